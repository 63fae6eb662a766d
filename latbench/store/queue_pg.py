"""PostgreSQL's lease and report hot path: one statement each, run in autocommit.

On PostgreSQL every statement is a network round trip, and a transaction adds two more (BEGIN and
COMMIT), so the portable path of :mod:`latbench.store.queue` (4 statements per lease, 3 per report,
each in a transaction) spent most of the server's CPU per job on round trips. Here a lease is one
statement built from data-modifying CTEs (check the agent, take the next job with ``FOR UPDATE SKIP
LOCKED``, start its campaign, mark the agent alive) and a report is one statement (finish the job if
this lease holds it, insert its measurement) plus the campaign-done check as its own statement after
it, as the module docstring of ``queue`` requires. A single statement is atomic on its own, so
autocommit keeps every guarantee of the transaction it replaces.

What the fast path does not handle it hands back to the portable path: a device with an expired lease
(requeued first, in one transaction, as before) and a report refused (told apart as duplicate or stale
by a fresh read, which sees a racing report's commit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Integer, String, bindparam, text
from sqlalchemy.orm import Session

from latbench.store.models import UtcDateTime

# Take the next job only when the agent is registered for the device it names and the device has no
# expired lease (else the caller requeues those first). Data-modifying CTEs run to completion whether
# or not the final SELECT reads them, and all see one snapshot: the campaign is read as it was.
_LEASE = (
    text(
        """
WITH owner AS (
    SELECT a.device_id, d.name FROM agents a JOIN devices d ON d.id = a.device_id WHERE a.id = :p_agent
), dev AS (
    SELECT device_id FROM owner WHERE name = :p_device
), expired AS (
    SELECT EXISTS (
        SELECT 1 FROM jobs
        WHERE device_id = (SELECT device_id FROM dev) AND state = 'leased' AND lease_expires_at < :p_now
    ) AS found
), next AS (
    SELECT id FROM jobs
    WHERE device_id = (SELECT device_id FROM dev) AND state = 'queued' AND requirement = ANY(:p_caps)
      AND NOT (SELECT found FROM expired)
    ORDER BY queue_rank, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE jobs SET state = 'leased', lease_id = :p_lease_id, lease_owner = :p_agent, leased_at = :p_now,
                    lease_expires_at = :p_expires, attempts = jobs.attempts + 1, updated_at = :p_now
    FROM next WHERE jobs.id = next.id
    RETURNING jobs.id, jobs.campaign_id, jobs.arch_index, jobs.canonical_key, jobs.attempts, jobs.max_attempts
), started AS (
    UPDATE campaigns SET state = 'running'
    FROM taken WHERE campaigns.id = taken.campaign_id AND campaigns.state = 'queued'
    RETURNING campaigns.id
), alive AS (
    UPDATE agents SET last_heartbeat = :p_now, state = 'online'
    WHERE id = :p_agent AND EXISTS (SELECT 1 FROM dev)
    RETURNING id
)
SELECT (SELECT name FROM owner) AS registered, (SELECT found FROM expired) AS expired,
       t.id, t.campaign_id, t.arch_index, t.canonical_key, t.attempts, t.max_attempts,
       c.runtime, c.precision, c.protocol
FROM (SELECT 1) AS one
LEFT JOIN taken AS t ON true
LEFT JOIN campaigns AS c ON c.id = t.campaign_id
"""
    )
    .bindparams(
        bindparam("p_now", type_=UtcDateTime()),
        bindparam("p_expires", type_=UtcDateTime()),
        bindparam("p_agent", type_=String()),
        bindparam("p_device", type_=String()),
        bindparam("p_lease_id", type_=String()),
    )
    .columns(protocol=JSON(), id=Integer(), campaign_id=Integer())
)

# Finish the job if this lease still holds it (the WHERE is the lease check; the row lock orders racing
# repeats, and a repeat re-checks the WHERE after the first commits, so it finds the job done) and
# insert the measurement with the campaign's runtime and precision where the report gave none.
_REPORT = text(
    """
WITH fin AS (
    UPDATE jobs SET state = 'done', finished_at = :p_now, lease_expires_at = NULL, updated_at = :p_now
    WHERE id = :p_job AND state = 'leased' AND lease_id = :p_lease_id AND lease_owner = :p_agent
      AND lease_expires_at >= :p_now
    RETURNING campaign_id, device_id, arch_index, canonical_key
), ins AS (
    INSERT INTO measurements (device_id, arch_index, canonical_key, latency_ms, stats, raw_ms, runtime,
                              precision, versions, agent_id, job_id, lease_id, campaign_id, provenance,
                              measured_at)
    SELECT fin.device_id, fin.arch_index, fin.canonical_key, :p_latency, :p_stats, :p_raw,
           COALESCE(NULLIF(:p_runtime, ''), c.runtime), COALESCE(NULLIF(:p_precision, ''), c.precision),
           :p_versions, :p_agent, :p_job, :p_lease_id, fin.campaign_id, :p_provenance, :p_now
    FROM fin JOIN campaigns AS c ON c.id = fin.campaign_id
    RETURNING campaign_id
)
SELECT campaign_id FROM ins
"""
).bindparams(
    bindparam("p_now", type_=UtcDateTime()),
    bindparam("p_job", type_=Integer()),
    bindparam("p_agent", type_=String()),
    bindparam("p_lease_id", type_=String()),
    bindparam("p_runtime", type_=String()),
    bindparam("p_precision", type_=String()),
    bindparam("p_provenance", type_=String()),
    bindparam("p_stats", type_=JSON()),
    bindparam("p_raw", type_=JSON()),
    bindparam("p_versions", type_=JSON()),
)

# The campaign-done check as one write: a campaign that still has open jobs matches no row, and an
# UPDATE that matches nothing takes no lock.
_CAMPAIGN_DONE = text(
    """
UPDATE campaigns SET state = 'done', finished_at = :p_now
WHERE id = :p_campaign AND state IN ('queued', 'running')
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.campaign_id = campaigns.id AND jobs.state IN ('queued', 'leased'))
"""
).bindparams(bindparam("p_now", type_=UtcDateTime()), bindparam("p_campaign", type_=Integer()))


def autocommit(session: Session) -> Connection:
    """The session's connection in autocommit mode (whatever the session had open is committed)."""
    if session.in_transaction():
        session.commit()
    return session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def lease(
    conn: Connection,
    agent_id: str,
    device: str,
    caps: list[str],
    lease_id: str,
    now: datetime,
    expires: datetime,
) -> Any:
    """The lease statement's one row: ``registered`` (the agent's device name, None for an unknown agent),
    ``expired`` (the device has an expired lease: nothing was taken), then the job taken, if any."""
    params = {
        "p_agent": agent_id,
        "p_device": device,
        "p_caps": caps,
        "p_lease_id": lease_id,
        "p_now": now,
        "p_expires": expires,
    }
    return conn.execute(_LEASE, params).one()


def report(conn: Connection, row: dict[str, Any]) -> int | None:
    """Finish the job and insert its measurement; the campaign id, or None when the lease does not hold."""
    return conn.execute(_REPORT, row).scalar()


def complete_campaign(conn: Connection, campaign_id: int, now: datetime) -> int:
    return int(conn.execute(_CAMPAIGN_DONE, {"p_campaign": campaign_id, "p_now": now}).rowcount or 0)


# -- group commit: many callers' leases or reports in one statement (latbench.store.group_commit) -------
# The same statements for a batch: the requests come in as parallel arrays (unnest ... WITH ORDINALITY
# keeps their order), so a batch of any size is one round trip and one plan.

# Agents that are not registered for the device drop out of ``req`` (the caller takes them the single
# path, which says why); ``next`` takes up to one job per request, numbered in queue order, and request
# k gets job k. A job can only be taken once: SKIP LOCKED, and the UPDATE re-checks nothing else.
_LEASE_MANY = (
    text(
        """
WITH req AS (
    SELECT r.agent_id, r.lease_id, row_number() OVER (ORDER BY r.ord) AS rn
    FROM unnest(CAST(:p_agents AS text[]), CAST(:p_lease_ids AS text[])) WITH ORDINALITY AS r(agent_id, lease_id, ord)
    JOIN agents a ON a.id = r.agent_id JOIN devices d ON d.id = a.device_id
    WHERE d.name = :p_device
), dev AS (
    SELECT id AS device_id FROM devices WHERE name = :p_device
), expired AS (
    SELECT EXISTS (
        SELECT 1 FROM jobs
        WHERE device_id = (SELECT device_id FROM dev) AND state = 'leased' AND lease_expires_at < :p_now
    ) AS found
), next AS (
    SELECT s.id, row_number() OVER (ORDER BY s.queue_rank, s.id) AS rn
    FROM (
        SELECT id, queue_rank FROM jobs
        WHERE device_id = (SELECT device_id FROM dev) AND state = 'queued' AND requirement = ANY(:p_caps)
          AND NOT (SELECT found FROM expired)
        ORDER BY queue_rank, id
        LIMIT :p_n
        FOR UPDATE SKIP LOCKED
    ) AS s
), taken AS (
    UPDATE jobs SET state = 'leased', lease_id = req.lease_id, lease_owner = req.agent_id, leased_at = :p_now,
                    lease_expires_at = :p_expires, attempts = jobs.attempts + 1, updated_at = :p_now
    FROM next JOIN req ON req.rn = next.rn
    WHERE jobs.id = next.id
    RETURNING jobs.id, jobs.lease_id, jobs.campaign_id, jobs.arch_index, jobs.canonical_key, jobs.attempts,
              jobs.max_attempts
), started AS (
    UPDATE campaigns SET state = 'running'
    WHERE id IN (SELECT campaign_id FROM taken) AND state = 'queued'
    RETURNING id
), alive AS (
    UPDATE agents SET last_heartbeat = :p_now, state = 'online'
    WHERE id IN (SELECT agent_id FROM req)
    RETURNING id
)
SELECT (SELECT found FROM expired) AS expired, req.lease_id AS request_lease_id,
       t.id, t.campaign_id, t.arch_index, t.canonical_key, t.attempts, t.max_attempts,
       c.runtime, c.precision, c.protocol
FROM req
LEFT JOIN taken AS t ON t.lease_id = req.lease_id
LEFT JOIN campaigns AS c ON c.id = t.campaign_id
"""
    )
    .bindparams(
        bindparam("p_now", type_=UtcDateTime()),
        bindparam("p_expires", type_=UtcDateTime()),
        bindparam("p_device", type_=String()),
        bindparam("p_n", type_=Integer()),
    )
    .columns(protocol=JSON(), id=Integer(), campaign_id=Integer())
)

# Every report whose lease still holds finishes its job and inserts its measurement; the others match
# nothing (the caller takes them the single path, which says duplicate or stale). The caller never puts
# one job twice in a batch: two rows of ``r`` for one job would insert two measurements.
_REPORT_MANY = text(
    """
WITH r AS (
    SELECT * FROM unnest(
        CAST(:p_jobs AS integer[]), CAST(:p_lease_ids AS text[]), CAST(:p_agents AS text[]),
        CAST(:p_latency AS double precision[]), CAST(:p_stats AS text[]), CAST(:p_raw AS text[]),
        CAST(:p_versions AS text[]), CAST(:p_runtimes AS text[]), CAST(:p_precisions AS text[])
    ) AS r(job_id, lease_id, agent_id, latency_ms, stats, raw_ms, versions, runtime, precision)
), fin AS (
    UPDATE jobs SET state = 'done', finished_at = :p_now, lease_expires_at = NULL, updated_at = :p_now
    FROM r
    WHERE jobs.id = r.job_id AND jobs.state = 'leased' AND jobs.lease_id = r.lease_id
      AND jobs.lease_owner = r.agent_id AND jobs.lease_expires_at >= :p_now
    RETURNING jobs.id, jobs.campaign_id, jobs.device_id, jobs.arch_index, jobs.canonical_key
), ins AS (
    INSERT INTO measurements (device_id, arch_index, canonical_key, latency_ms, stats, raw_ms, runtime,
                              precision, versions, agent_id, job_id, lease_id, campaign_id, provenance,
                              measured_at)
    SELECT fin.device_id, fin.arch_index, fin.canonical_key, r.latency_ms, CAST(r.stats AS json),
           CAST(r.raw_ms AS json), COALESCE(NULLIF(r.runtime, ''), c.runtime),
           COALESCE(NULLIF(r.precision, ''), c.precision), CAST(r.versions AS json), r.agent_id, r.job_id,
           r.lease_id, fin.campaign_id, :p_provenance, :p_now
    FROM fin JOIN r ON r.job_id = fin.id JOIN campaigns AS c ON c.id = fin.campaign_id
    RETURNING job_id, campaign_id
)
SELECT job_id, campaign_id FROM ins
"""
).bindparams(bindparam("p_now", type_=UtcDateTime()), bindparam("p_provenance", type_=String()))


def lease_many(
    conn: Connection,
    device: str,
    caps: list[str],
    requests: list[tuple[str, str]],
    now: datetime,
    expires: datetime,
) -> list[Any]:
    """Lease for many ``(agent_id, lease_id)`` requests of one device and capability set at once.

    One row per request whose agent is registered for ``device``: ``expired`` (the device has an expired
    lease: nothing was taken), ``request_lease_id``, then the job taken for it, if any (``id`` None)."""
    params = {
        "p_agents": [agent for agent, _ in requests],
        "p_lease_ids": [lease_id for _, lease_id in requests],
        "p_device": device,
        "p_caps": caps,
        "p_n": len(requests),
        "p_now": now,
        "p_expires": expires,
    }
    return list(conn.execute(_LEASE_MANY, params))


def report_many(conn: Connection, reports: list[dict[str, Any]], provenance: str, now: datetime) -> dict[int, int]:
    """Finish and record many reports at once (no job twice); ``{job_id: campaign_id}`` of those recorded.

    Each report: ``job_id, lease_id, agent_id, latency_ms`` and ``stats, raw_ms, versions`` as JSON text,
    ``runtime, precision`` ('' for the campaign's)."""
    params = {
        "p_jobs": [r["job_id"] for r in reports],
        "p_lease_ids": [r["lease_id"] for r in reports],
        "p_agents": [r["agent_id"] for r in reports],
        "p_latency": [r["latency_ms"] for r in reports],
        "p_stats": [r["stats"] for r in reports],
        "p_raw": [r["raw_ms"] for r in reports],
        "p_versions": [r["versions"] for r in reports],
        "p_runtimes": [r["runtime"] for r in reports],
        "p_precisions": [r["precision"] for r in reports],
        "p_provenance": provenance,
        "p_now": now,
    }
    return {int(job): int(campaign) for job, campaign in conn.execute(_REPORT_MANY, params)}
