"""The persistent job queue: campaigns of NB201 models to time on a device, leased to agents.

Life of a job::

    queued --lease--> leased --report_result--> done            (one Measurement, exactly once)
                        |----report_failure---> queued | failed (failed at max_attempts, or at once
                        |                                        for "unsupported")
                        |----lease expires----> queued | failed (the next lease call or requeue_expired)
    queued/leased --cancel_campaign--> cancelled

Rules:

* A lease is a fresh uuid. Only the agent holding an unexpired lease may extend it (heartbeat) or
  report on it; anything else is ``STALE_LEASE`` (refused, nothing written). A report repeated with
  the lease that already finished the job is ``DUPLICATE`` (acknowledged, nothing written). A lease
  past its expiry is gone even before anyone re-leases the job.
* ``attempts`` counts leases; an expired lease is an attempt. The job's last error is kept.
* Matching: a job goes only to an agent of its device whose capabilities contain the job's
  requirement ``"<runtime>:<precision>"``. Highest campaign priority first, FIFO (job id) within one.
* Every function takes a ``Session``, runs its own transaction and commits it. Concurrency: on
  PostgreSQL the lease query is ``SELECT ... FOR UPDATE SKIP LOCKED`` and reports lock their job row;
  on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (writers take turns).
* A campaign is done when no job is queued or leased. That check runs in its own transaction after
  the job's change has committed, so two agents finishing the last two jobs at once cannot both miss
  it; :func:`requeue_expired` also sweeps campaigns left open by a crash between the two.
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, distinct, exists, func, insert, select, update
from sqlalchemy.orm import Session

from latbench import nb201
from latbench.protocol import DEFAULT_GROUP_SIZE, DEFAULT_WARMUP, ProtocolParams
from latbench.store import queue_pg
from latbench.store.archs import architecture_rows, ensure_architectures
from latbench.store.db import begin_write, is_postgresql
from latbench.store.devices import (
    UnknownDevice,
    check_device_name,
    default_runs,
    ensure_device,
    require_device,
)
from latbench.store.models import (
    OPEN_JOB_STATES,
    Agent,
    AgentState,
    Campaign,
    CampaignState,
    Device,
    Job,
    JobState,
    Measurement,
    utcnow,
)
from latbench.store.tokens import AuthError, require_token

__all__ = [
    "ERROR_CLASSES",
    "LEASE_EXPIRED",
    "PROVENANCE_EAGLE",
    "AuthError",
    "LeasedJob",
    "ReportOutcome",
    "UnknownAgent",
    "UnknownCampaign",
    "UnknownDevice",
    "UnknownJob",
    "agents_overview",
    "campaign_progress",
    "cancel_campaign",
    "heartbeat",
    "lease_job",
    "register_agent",
    "report_failure",
    "report_result",
    "requeue_expired",
    "submit_campaign",
]

ERROR_CLASSES = ("build", "convert", "compile", "unsupported", "runtime", "timeout")
LEASE_EXPIRED = "lease_expired"  # error class the queue itself records when an agent went silent
PROVENANCE_EAGLE = "eagle"
_IDENT_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-.")
_MAX_ERROR_CHARS = 8000
# The tables behind the ORM classes, for the Core statements of the lease and report hot path.
_AGENTS, _DEVICES, _JOBS, _CAMPAIGNS, _MEASUREMENTS = (
    cast(Table, model.__table__) for model in (Agent, Device, Job, Campaign, Measurement)
)


def _hot_statements() -> dict[str, Any]:
    """The statements of every lease and report, built once: building a statement and its cache key
    costs as much CPU as running it (bound values come as parameters named ``p_*``)."""
    a, d, j, c = _AGENTS.c, _DEVICES.c, _JOBS.c, _CAMPAIGNS.c
    when = bindparam("p_now", type_=j.leased_at.type)
    open_job = exists().where(j.campaign_id == c.id, j.state.in_(OPEN_JOB_STATES))
    unfinished = c.state.in_((CampaignState.QUEUED.value, CampaignState.RUNNING.value))

    def take_job(requirement: Any) -> Any:
        next_id = (
            select(j.id)
            .where(j.device_id == bindparam("p_device_id"), j.state == JobState.QUEUED.value, requirement)
            .order_by(j.queue_rank, j.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return (
            update(_JOBS)
            .where(j.id == next_id)
            .values(
                state=JobState.LEASED.value,
                lease_id=bindparam("p_lease_id"),
                lease_owner=bindparam("p_agent"),
                leased_at=when,
                lease_expires_at=bindparam("p_expires", type_=j.lease_expires_at.type),
                attempts=j.attempts + 1,
            )
            .returning(j.id, j.campaign_id, j.arch_index, j.canonical_key, j.attempts, j.max_attempts)
        )

    return {
        # Mark the agent alive; its device id and name (RETURNING may not name another table on SQLite).
        "touch_agent": update(_AGENTS)
        .where(a.id == bindparam("p_agent"))
        .values(last_heartbeat=when, state=AgentState.ONLINE.value)
        .returning(a.device_id, select(d.name).where(d.id == a.device_id).correlate(_AGENTS).scalar_subquery()),
        "any_expired": select(j.id)
        .where(j.device_id == bindparam("p_device_id"), j.state == JobState.LEASED.value, j.lease_expires_at < when)
        .limit(1),
        # Lease the first queued job that fits in one statement (on SQLite the write lock already
        # serialises leases; FOR UPDATE is not rendered there). Agents usually offer one capability:
        # a plain comparison then, no list to expand on every call.
        "take_job_1": take_job(j.requirement == bindparam("p_cap")),
        "take_job_n": take_job(j.requirement.in_(bindparam("p_caps", expanding=True))),
        "campaign": select(c.runtime, c.precision, c.protocol, c.state).where(c.id == bindparam("p_campaign")),
        "start_campaign": update(_CAMPAIGNS)
        .where(c.id == bindparam("p_campaign"), c.state == CampaignState.QUEUED.value)
        .values(state=CampaignState.RUNNING.value),
        # Finish the job only if this lease still holds it: the WHERE is the lease check and the row
        # lock orders concurrent reports (a repeat waits, then finds the job done).
        "finish_job": update(_JOBS)
        .where(
            j.id == bindparam("p_job"),
            j.state == JobState.LEASED.value,
            j.lease_id == bindparam("p_lease_id"),
            j.lease_owner == bindparam("p_agent"),
            j.lease_expires_at >= when,
        )
        .values(state=JobState.DONE.value, finished_at=when, lease_expires_at=None)
        .returning(j.campaign_id, j.device_id, j.arch_index, j.canonical_key),
        "job_state": select(j.state, j.lease_id).where(j.id == bindparam("p_job")),
        "add_measurement": insert(_MEASUREMENTS),
        "finished_among": select(c.id).where(c.id.in_(bindparam("p_campaigns", expanding=True)), unfinished, ~open_job),
        "finished_one": select(c.id).where(c.id == bindparam("p_campaign"), unfinished, ~open_job),
        "finished_all": select(c.id).where(unfinished, ~open_job),
        "mark_done": update(_CAMPAIGNS)
        .where(c.id.in_(bindparam("p_campaigns", expanding=True)), unfinished, ~open_job)
        .values(state=CampaignState.DONE.value, finished_at=when),
    }


_SQL = _hot_statements()


class UnknownAgent(LookupError):
    """An agent id the store never issued (the agent should register again)."""


class UnknownJob(LookupError):
    pass


class UnknownCampaign(LookupError):
    pass


class ReportOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the same job + lease was already recorded: acknowledged, nothing written
    STALE_LEASE = "stale_lease"  # the lease expired or was superseded: refused, nothing written


@dataclass(frozen=True)
class LeasedJob:
    """What an agent needs to build and time one model."""

    job_id: int
    lease_id: str
    arch_index: int
    arch_str: str
    runtime: str
    precision: str
    protocol: dict[str, Any]
    campaign_id: int
    attempt: int
    lease_expires_at: datetime | None = None
    canonical_key: str = ""  # agents cache converted models by it
    max_attempts: int = 0
    device: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requirement(self) -> str:
        return f"{self.runtime}:{self.precision}"


# -- helpers ---------------------------------------------------------------------------------------
def _now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now


def _check_ident(what: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64 or not set(value) <= _IDENT_CHARS:
        raise ValueError(f"{what} must be a short lower-case name like 'litert' or 'fp32', got {value!r}")
    return value


def _check_seconds(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def _jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays become floats and lists)."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if hasattr(obj, "item"):
            return obj.item()
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    return None if value is None else json.loads(json.dumps(value, default=default))


def _locked_job(session: Session, job_id: int) -> Job:
    job = session.scalar(
        select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    )
    if job is None:
        session.rollback()
        raise UnknownJob(f"no job {job_id}")
    return job


def _holds_lease(job: Job, lease_id: str, agent_id: str, now: datetime) -> bool:
    return (
        job.state == JobState.LEASED
        and job.lease_id == lease_id
        and job.lease_owner == agent_id
        and job.lease_expires_at is not None
        and job.lease_expires_at >= now
    )


def _agent(session: Session, agent_id: str) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.id == agent_id).execution_options(populate_existing=True))
    if agent is None:
        session.rollback()
        raise UnknownAgent(f"unknown agent {agent_id!r}: register again")
    return agent


def _complete_campaigns(session: Session, campaign_ids: Iterable[int] | None, now: datetime) -> int:
    """Mark done the given (or all) open campaigns that have no queued or leased job; commits.

    A read-only look first (no write lock on SQLite, no extra write on PostgreSQL) so that the usual
    case, a campaign with jobs left, costs one cheap query.
    """
    ids = None if campaign_ids is None else sorted(set(campaign_ids))
    if ids == []:
        return 0
    try:
        if ids is None:
            found = list(session.scalars(_SQL["finished_all"]))
        elif len(ids) == 1:  # the report path: one statement with no list to expand
            found = list(session.scalars(_SQL["finished_one"], {"p_campaign": ids[0]}))
        else:
            found = list(session.scalars(_SQL["finished_among"], {"p_campaigns": ids}))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if not found:
        return 0
    begin_write(session)
    try:
        count = session.execute(_SQL["mark_done"], {"p_campaigns": found, "p_now": now}).rowcount  # type: ignore[attr-defined]
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return int(count or 0)


def _expire_leases(session: Session, now: datetime, device_id: int | None = None) -> tuple[int, set[int]]:
    """Requeue (or fail, at max attempts) jobs whose lease expired. Returns (count, failed campaigns).

    Runs inside the caller's write transaction; rows another transaction holds are skipped.
    """
    stmt = (
        select(Job)
        .where(Job.state == JobState.LEASED.value, Job.lease_expires_at < now)
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if device_id is not None:
        stmt = stmt.where(Job.device_id == device_id)
    count, failed_campaigns = 0, set()
    for job in session.scalars(stmt):
        expired = job.lease_expires_at
        job.error_class = LEASE_EXPIRED
        job.last_error = (
            f"lease {job.lease_id} of agent {job.lease_owner} expired at "
            f"{expired.isoformat() if expired else '?'} (attempt {job.attempts} of {job.max_attempts})"
        )
        job.lease_expires_at = None
        if job.attempts >= job.max_attempts:
            job.state = JobState.FAILED.value
            job.finished_at = now
            failed_campaigns.add(job.campaign_id)
        else:
            job.state = JobState.QUEUED.value
        count += 1
    return count, failed_campaigns


# -- campaigns -------------------------------------------------------------------------------------
def _protocol(protocol: dict[str, Any] | None, device: Device) -> dict[str, Any]:
    given = dict(protocol or {})
    fields = {"runs", "warmup", "group_size", "pause_s"}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ValueError(f"unknown protocol parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    given.setdefault("runs", default_runs(device.device_class))
    given.setdefault("warmup", DEFAULT_WARMUP)
    given.setdefault("group_size", DEFAULT_GROUP_SIZE)
    return ProtocolParams(**given).to_dict()  # validates: runs >= 1, warmup >= 0, group_size >= 1


def _arch_indices(archs: Sequence[int]) -> list[int]:
    if isinstance(archs, str | bytes):
        raise ValueError("archs must be a sequence of NB201 indices")
    indices: list[int] = []
    for value in archs:
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise ValueError(f"architecture {value!r} is not an NB201 index")
        index = int(value)
        if not 0 <= index < nb201.NUM_ARCHS:
            raise ValueError(f"architecture {index} is not an NB201 index (0..{nb201.NUM_ARCHS - 1})")
        indices.append(index)
    if not indices:
        raise ValueError("a campaign needs at least one architecture")
    rows = architecture_rows()
    invalid = [i for i in dict.fromkeys(indices) if not rows[i]["valid"]]
    if invalid:
        shown = ", ".join(map(str, invalid[:10])) + (" ..." if len(invalid) > 10 else "")
        raise ValueError(
            f"{len(invalid)} invalid NB201 cell(s) (output unreachable after pruning, nothing to time): {shown}"
        )
    return indices


def submit_campaign(
    session: Session,
    device: str,
    archs: Sequence[int],
    runtime: str = "litert",
    precision: str = "fp32",
    protocol: dict[str, Any] | None = None,
    priority: int = 0,
    name: str | None = None,
    dedupe: bool = True,
    max_attempts: int = 3,
) -> Campaign:
    """Queue one job per architecture (per canonical graph, keeping the first index of each, when
    ``dedupe``). Repeated indices are queued once either way. Protocol defaults: the paper's runs for
    the device class (10 mobile, 1000 otherwise), warmup 10, groups of 10."""
    _check_ident("runtime", runtime)
    _check_ident("precision", precision)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an integer, got {priority!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
    indices = _arch_indices(archs)
    begin_write(session)
    try:
        dev = require_device(session, device)
        params = _protocol(protocol, dev)
        ensure_architectures(session)
        rows = architecture_rows()
        chosen: dict[object, int] = {}
        for index in indices:
            chosen.setdefault(rows[index]["canonical_key"] if dedupe else index, index)
        campaign = Campaign(
            name=name,
            device_id=dev.id,
            runtime=runtime,
            precision=precision,
            protocol=params,
            priority=priority,
            state=CampaignState.QUEUED.value,
            dedupe=dedupe,
        )
        session.add(campaign)
        session.flush()
        now = utcnow()
        session.execute(
            insert(Job),
            [
                {
                    "campaign_id": campaign.id,
                    "arch_index": index,
                    "canonical_key": rows[index]["canonical_key"],
                    "device_id": dev.id,
                    "requirement": f"{runtime}:{precision}",
                    "queue_rank": -priority,
                    "state": JobState.QUEUED.value,
                    "attempts": 0,
                    "max_attempts": max_attempts,
                    "created_at": now,
                    "updated_at": now,
                }
                for index in chosen.values()
            ],
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return campaign


def cancel_campaign(session: Session, campaign_id: int) -> int:
    """Cancel a campaign's queued and leased jobs (their agents' reports become stale). Returns how
    many jobs were cancelled; a finished campaign is left as it is (0)."""
    begin_write(session)
    try:
        campaign = session.scalar(
            select(Campaign).where(Campaign.id == campaign_id).execution_options(populate_existing=True)
        )
        if campaign is None:
            raise UnknownCampaign(f"no campaign {campaign_id}")
        if campaign.state in (CampaignState.DONE, CampaignState.CANCELLED):
            session.commit()
            return 0
        now = utcnow()
        # Jobs first, then the campaign: the same lock order as leasing (job, then campaign).
        result = session.execute(
            update(Job)
            .where(Job.campaign_id == campaign_id, Job.state.in_(OPEN_JOB_STATES))
            .values(state=JobState.CANCELLED.value, finished_at=now, lease_expires_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(state=CampaignState.CANCELLED.value, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def campaign_progress(session: Session, campaign_id: int, recent: int = 200) -> dict[str, Any]:
    """Counts per job state, fractions, and an ETA: the mean duration of the last ``recent`` finished
    jobs times the jobs left, divided by the number of agents working on the campaign now."""
    try:
        campaign = session.scalar(
            select(Campaign).where(Campaign.id == campaign_id).execution_options(populate_existing=True)
        )
        if campaign is None:
            raise UnknownCampaign(f"no campaign {campaign_id}")
        counts = {state.value: 0 for state in JobState}
        for state, count in session.execute(
            select(Job.state, func.count()).where(Job.campaign_id == campaign_id).group_by(Job.state)
        ):
            counts[state] = int(count)
        spans = session.execute(
            select(Job.leased_at, Job.finished_at)
            .where(Job.campaign_id == campaign_id, Job.state == JobState.DONE.value)
            .order_by(Job.finished_at.desc())
            .limit(recent)
        ).all()
        active = session.scalar(
            select(func.count(distinct(Job.lease_owner))).where(
                Job.campaign_id == campaign_id, Job.state == JobState.LEASED.value
            )
        )
        device_name = session.scalar(select(Device.name).where(Device.id == campaign.device_id))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    durations = [(end - start).total_seconds() for start, end in spans if start is not None and end is not None]
    mean_s = sum(durations) / len(durations) if durations else None
    total = sum(counts.values())
    left = counts[JobState.QUEUED] + counts[JobState.LEASED]
    finished = counts[JobState.DONE] + counts[JobState.FAILED] + counts[JobState.CANCELLED]
    if left == 0:
        eta_s: float | None = 0.0
    elif mean_s is None:
        eta_s = None
    else:
        eta_s = mean_s * left / max(1, int(active or 0))
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "device": device_name,
        "runtime": campaign.runtime,
        "precision": campaign.precision,
        "protocol": campaign.protocol,
        "priority": campaign.priority,
        "state": campaign.state,
        "total": total,
        "counts": counts,
        "done_fraction": counts[JobState.DONE] / total if total else 0.0,
        "finished_fraction": finished / total if total else 0.0,
        "mean_job_s": mean_s,
        "active_agents": int(active or 0),
        "eta_s": eta_s,
        "created_at": campaign.created_at.isoformat(),
        "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None,
    }


# -- agents ----------------------------------------------------------------------------------------
def register_agent(
    session: Session,
    token: str,
    device: str,
    hostname: str,
    capabilities: Collection[str],
    backend_check: dict[str, Any] | None,
    *,
    hardware: str = "",
    host: dict[str, Any] | None = None,
) -> str:
    """Register an agent for ``device`` (created if new) and return its id. Raises AuthError."""
    check_device_name(device)
    caps = list(dict.fromkeys(capabilities))
    for cap in caps:
        runtime, sep, precision = str(cap).partition(":")
        if not sep:
            raise ValueError(f"capability {cap!r} must look like '<runtime>:<precision>', e.g. 'litert:fp32'")
        _check_ident("capability runtime", runtime)
        _check_ident("capability precision", precision)
    begin_write(session)
    try:
        token_row = require_token(session, token)
        dev = ensure_device(session, device, hardware=hardware, host=_jsonable(host))
        agent = Agent(
            id=str(uuid.uuid4()),
            device_id=dev.id,
            token_id=token_row.id,
            hostname=str(hostname)[:128],
            capabilities=caps,
            backend_check=_jsonable(backend_check),
            state=AgentState.ONLINE.value,
        )
        session.add(agent)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return agent.id


def agents_overview(session: Session, offline_after_s: float = 120.0, now: datetime | None = None) -> list[dict]:
    """Every agent with its live state: offline when silent for more than ``offline_after_s``."""
    now = _now(now)
    try:
        agents = list(session.scalars(select(Agent).order_by(Agent.registered_at)))
        leased = dict(
            session.execute(
                select(Job.lease_owner, func.count())
                .where(Job.state == JobState.LEASED.value)
                .group_by(Job.lease_owner)
            ).all()
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    out = []
    for agent in agents:
        silent = (now - agent.last_heartbeat).total_seconds()
        out.append(
            {
                "id": agent.id,
                "device": agent.device.name,
                "hostname": agent.hostname,
                "capabilities": agent.capabilities,
                "registered_at": agent.registered_at.isoformat(),
                "last_heartbeat": agent.last_heartbeat.isoformat(),
                "state": AgentState.OFFLINE.value if silent > offline_after_s else AgentState.ONLINE.value,
                "leased_jobs": int(leased.get(agent.id, 0)),
            }
        )
    return out


# -- leases ----------------------------------------------------------------------------------------
def lease_job(
    session: Session,
    agent_id: str,
    device: str,
    capabilities: Collection[str],
    lease_s: float = 60.0,
    now: datetime | None = None,
) -> LeasedJob | None:
    """Lease the next job this agent can run, or None when there is none."""
    now = _now(now)
    _check_seconds("lease_s", lease_s)
    caps = sorted({str(c) for c in capabilities})
    if caps and is_postgresql(session):
        leased = _lease_pg(session, agent_id, device, caps, now, lease_s)
        if leased is not _EXPIRED_FIRST:
            return leased  # type: ignore[return-value]
    # The service's hot path: Core statements built once (_SQL), not ORM objects, whose bookkeeping
    # was most of the server's CPU per job (benchmarks/queue_throughput.py).
    begin_write(session)
    try:
        device_id = _touch_agent(session, agent_id, device, now)
        failed_campaigns: set[int] = set()
        if session.execute(_SQL["any_expired"], {"p_device_id": device_id, "p_now": now}).first() is not None:
            _, failed_campaigns = _expire_leases(session, now, device_id=device_id)
        leased = _take_next_job(session, agent_id, device_id, device, caps, now, lease_s) if caps else None
        session.commit()
    except BaseException:
        session.rollback()
        raise
    _complete_campaigns(session, failed_campaigns, now)
    return leased


_EXPIRED_FIRST = object()  # _lease_pg's answer when the device's expired leases must be requeued first


def _lease_pg(
    session: Session, agent_id: str, device: str, caps: list[str], now: datetime, lease_s: float
) -> LeasedJob | object | None:
    """PostgreSQL: the lease in one statement (queue_pg); ``_EXPIRED_FIRST`` hands it to the portable path."""
    lease_id = str(uuid.uuid4())
    expires = now + timedelta(seconds=lease_s)
    try:
        row = queue_pg.lease(queue_pg.autocommit(session), agent_id, device, caps, lease_id, now, expires)
    finally:
        session.commit()  # gives the connection back (autocommit: nothing left to commit)
    if row.registered is None:
        raise UnknownAgent(f"unknown agent {agent_id!r}: register again")
    if row.registered != device:
        raise ValueError(f"agent {agent_id} is registered for device {row.registered!r}, not {device!r}")
    if row.expired:
        return _EXPIRED_FIRST
    return leased_from_row(row, lease_id, expires, device)


def leased_from_row(row: Any, lease_id: str, expires: datetime, device: str) -> LeasedJob | None:
    """The job a PostgreSQL lease statement's row took (None: it took none)."""
    if row.id is None:
        return None
    return LeasedJob(
        job_id=row.id,
        lease_id=lease_id,
        arch_index=row.arch_index,
        arch_str=architecture_rows()[row.arch_index]["arch_str"],
        runtime=row.runtime,
        precision=row.precision,
        protocol=dict(row.protocol),
        campaign_id=row.campaign_id,
        attempt=row.attempts,
        lease_expires_at=expires,
        canonical_key=row.canonical_key,
        max_attempts=row.max_attempts,
        device=device,
    )


def _touch_agent(session: Session, agent_id: str, device: str, now: datetime) -> int:
    """Mark the agent alive; its device id. Raises for an unknown agent or another device's name."""
    row = session.execute(_SQL["touch_agent"], {"p_agent": agent_id, "p_now": now}).first()
    if row is None:
        session.rollback()
        raise UnknownAgent(f"unknown agent {agent_id!r}: register again")
    device_id, registered = row
    if registered != device:
        raise ValueError(f"agent {agent_id} is registered for device {registered!r}, not {device!r}")
    return int(device_id)


def _take_next_job(
    session: Session, agent_id: str, device_id: int, device: str, caps: list[str], now: datetime, lease_s: float
) -> LeasedJob | None:
    lease_id = str(uuid.uuid4())
    expires = now + timedelta(seconds=lease_s)
    params = {"p_device_id": device_id, "p_lease_id": lease_id, "p_agent": agent_id, "p_now": now, "p_expires": expires}
    if len(caps) == 1:
        job = session.execute(_SQL["take_job_1"], {**params, "p_cap": caps[0]}).first()
    else:
        job = session.execute(_SQL["take_job_n"], {**params, "p_caps": caps}).first()
    if job is None:
        return None
    campaign = session.execute(_SQL["campaign"], {"p_campaign": job.campaign_id}).one()
    if campaign.state == CampaignState.QUEUED:
        session.execute(_SQL["start_campaign"], {"p_campaign": job.campaign_id})
    return LeasedJob(
        job_id=job.id,
        lease_id=lease_id,
        arch_index=job.arch_index,
        arch_str=architecture_rows()[job.arch_index]["arch_str"],  # the table holds the same strings
        runtime=campaign.runtime,
        precision=campaign.precision,
        protocol=dict(campaign.protocol),
        campaign_id=job.campaign_id,
        attempt=job.attempts,
        lease_expires_at=expires,
        canonical_key=job.canonical_key,
        max_attempts=job.max_attempts,
        device=device,
    )


def heartbeat(
    session: Session,
    agent_id: str,
    job_id: int | None = None,
    lease_id: str | None = None,
    extend_s: float = 60.0,
    now: datetime | None = None,
) -> bool:
    """Record that the agent is alive and extend its lease on ``job_id`` to ``now + extend_s``.

    False when the lease is gone (expired, requeued, re-leased, cancelled or finished): the agent
    should drop the job.
    """
    now = _now(now)
    _check_seconds("extend_s", extend_s)
    begin_write(session)
    try:
        agent = _agent(session, agent_id)
        agent.last_heartbeat = now
        agent.state = AgentState.ONLINE.value
        alive = True
        if job_id is not None:
            job = session.scalar(
                select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
            )
            alive = job is not None and lease_id is not None and _holds_lease(job, lease_id, agent_id, now)
            if alive:
                assert job is not None
                job.lease_expires_at = now + timedelta(seconds=extend_s)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return alive


def report_result(
    session: Session,
    job_id: int,
    lease_id: str,
    agent_id: str,
    latency_ms: float,
    stats: dict[str, Any] | None,
    raw_ms: Sequence[float] | None,
    versions: dict[str, Any] | None,
    runtime: str,
    precision: str,
    now: datetime | None = None,
) -> ReportOutcome:
    """Record the job's measurement, exactly once (see the module docstring for the outcomes)."""
    now = _now(now)
    latency_ms, stats_json, raw, versions_json = report_payload(latency_ms, stats, raw_ms, versions)
    if is_postgresql(session):
        outcome = _report_pg(
            session,
            job_id,
            lease_id,
            agent_id,
            float(latency_ms),
            stats_json,
            raw,
            versions_json,
            runtime,
            precision,
            now,
        )
        if outcome is not None:
            return outcome
    begin_write(session)
    try:
        lease = {"p_job": job_id, "p_lease_id": lease_id, "p_agent": agent_id, "p_now": now}
        job = session.execute(_SQL["finish_job"], lease).first()
        if job is None:  # not this lease's to finish: say why
            found = session.execute(_SQL["job_state"], {"p_job": job_id}).first()
            session.rollback()
            if found is None:
                raise UnknownJob(f"no job {job_id}")
            if found.state == JobState.DONE and found.lease_id == lease_id:
                return ReportOutcome.DUPLICATE
            return ReportOutcome.STALE_LEASE
        if not runtime or not precision:
            campaign = session.execute(_SQL["campaign"], {"p_campaign": job.campaign_id}).one()
            runtime, precision = runtime or campaign.runtime, precision or campaign.precision
        row = {
            "device_id": job.device_id,
            "arch_index": job.arch_index,
            "canonical_key": job.canonical_key,
            "latency_ms": float(latency_ms),
            "stats": stats_json,
            "raw_ms": raw,
            "runtime": runtime,
            "precision": precision,
            "versions": versions_json,
            "agent_id": agent_id,
            "job_id": job_id,
            "lease_id": lease_id,
            "campaign_id": job.campaign_id,
            "provenance": PROVENANCE_EAGLE,
            "measured_at": now,
        }
        session.execute(_SQL["add_measurement"], row)
        # SQLite's writers take turns (BEGIN IMMEDIATE), so this one sees every other report: the
        # campaign-done check can share its transaction. Elsewhere it must follow the commit.
        serialised = not is_postgresql(session)
        if serialised:
            session.execute(_SQL["mark_done"], {"p_campaigns": [job.campaign_id], "p_now": now})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if not serialised:
        _complete_campaigns(session, [job.campaign_id], now)
    return ReportOutcome.ACCEPTED


def report_payload(
    latency_ms: float, stats: dict[str, Any] | None, raw_ms: Sequence[float] | None, versions: dict[str, Any] | None
) -> tuple[float, Any, Any, Any]:
    """A report's values checked and made plain JSON: ``(latency_ms, stats, raw_ms, versions)``."""
    if (
        isinstance(latency_ms, bool)
        or not isinstance(latency_ms, int | float)
        or not (math.isfinite(latency_ms) and latency_ms > 0)
    ):
        raise ValueError(f"latency_ms must be a positive finite number, got {latency_ms!r}")
    raw = _jsonable(list(raw_ms) if raw_ms is not None else None)
    return float(latency_ms), _jsonable(stats), raw, _jsonable(versions)


def _report_pg(
    session: Session,
    job_id: int,
    lease_id: str,
    agent_id: str,
    latency_ms: float,
    stats: Any,
    raw: Any,
    versions: Any,
    runtime: str,
    precision: str,
    now: datetime,
) -> ReportOutcome | None:
    """PostgreSQL: finish and record in one statement, then the campaign-done check in another (see the
    module docstring). None when the lease did not hold: the portable path then says why."""
    row = {
        "p_job": job_id,
        "p_lease_id": lease_id,
        "p_agent": agent_id,
        "p_now": now,
        "p_latency": latency_ms,
        "p_stats": stats,
        "p_raw": raw,
        "p_versions": versions,
        "p_runtime": runtime or "",
        "p_precision": precision or "",
        "p_provenance": PROVENANCE_EAGLE,
    }
    try:
        conn = queue_pg.autocommit(session)
        campaign_id = queue_pg.report(conn, row)
        if campaign_id is not None:
            queue_pg.complete_campaign(conn, campaign_id, now)
    finally:
        session.commit()
    return None if campaign_id is None else ReportOutcome.ACCEPTED


def report_failure(
    session: Session,
    job_id: int,
    lease_id: str,
    agent_id: str,
    error_class: str,
    message: str,
    now: datetime | None = None,
) -> ReportOutcome:
    """Record a failed attempt: requeue the job, or fail it when its attempts are used up or the
    error is ``unsupported`` (retrying cannot help)."""
    now = _now(now)
    if error_class not in ERROR_CLASSES:
        raise ValueError(f"error class must be one of {', '.join(ERROR_CLASSES)}, got {error_class!r}")
    begin_write(session)
    try:
        job = _locked_job(session, job_id)
        if (
            job.lease_id == lease_id
            and job.lease_owner == agent_id
            and job.state in (JobState.QUEUED, JobState.FAILED)
            and job.error_class == error_class
        ):
            session.rollback()
            return ReportOutcome.DUPLICATE
        if not _holds_lease(job, lease_id, agent_id, now):
            session.rollback()
            return ReportOutcome.STALE_LEASE
        job.error_class = error_class
        job.last_error = str(message)[:_MAX_ERROR_CHARS]
        job.lease_expires_at = None
        failed = error_class == "unsupported" or job.attempts >= job.max_attempts
        job.state = JobState.FAILED.value if failed else JobState.QUEUED.value
        if failed:
            job.finished_at = now
        campaign_id = job.campaign_id
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if failed:
        _complete_campaigns(session, [campaign_id], now)
    return ReportOutcome.ACCEPTED


def requeue_expired(session: Session, now: datetime | None = None) -> int:
    """Requeue (or fail, at max attempts) every job whose lease expired; returns how many. Also marks
    done any open campaign left without open jobs. Meant to run periodically in the server."""
    now = _now(now)
    begin_write(session)
    try:
        count, _ = _expire_leases(session, now)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    _complete_campaigns(session, None, now)
    return count
