"""The job queue on SQLite and PostgreSQL: submit, lease, heartbeat, report, expiry, cancel, progress."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from latbench.store import queue
from latbench.store.archs import architecture_rows
from latbench.store.devices import ensure_device
from latbench.store.models import AgentToken, Campaign, Job, Measurement, utcnow
from latbench.store.queue import ReportOutcome
from latbench.store.tokens import AuthError, create_agent_token, revoke_token, verify_token

from .conftest import CAPS


def _groups() -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for row in architecture_rows():
        if row["valid"]:
            groups[row["canonical_key"]].append(row["index"])
    return groups


GROUPS = _groups()
PAIR = next(g[:2] for g in GROUPS.values() if len(g) >= 2)  # two equivalent cells
SINGLES = [g[0] for g in GROUPS.values() if len(g) == 1][:40]  # cells with no equivalent
INVALID = [r["index"] for r in architecture_rows() if not r["valid"]][:3]


def _report(session: Session, leased: queue.LeasedJob, agent: str, latency: float = 1.5, **kw) -> ReportOutcome:
    return queue.report_result(
        session,
        leased.job_id,
        leased.lease_id,
        agent,
        latency,
        {"median": latency},
        [latency] * 10,
        {"tf": "2.21"},
        leased.runtime,
        leased.precision,
        **kw,
    )


def _count(session: Session, model, *where) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- submit ----------------------------------------------------------------------------------------
def test_submit_dedupes_equivalent_cells(session: Session, device: str) -> None:
    archs = [PAIR[1], SINGLES[0], PAIR[0], SINGLES[0]]
    campaign = queue.submit_campaign(session, device, archs, name="c")
    jobs = session.scalars(select(Job).where(Job.campaign_id == campaign.id).order_by(Job.id)).all()
    assert [j.arch_index for j in jobs] == [PAIR[1], SINGLES[0]]  # first index of each key, in order
    assert all(j.requirement == "litert:fp32" and j.state == "queued" for j in jobs)
    assert campaign.protocol == {"runs": 1000, "warmup": 10, "group_size": 10, "pause_s": 0.0}
    plain = queue.submit_campaign(session, device, archs, dedupe=False)
    assert _count(session, Job, Job.campaign_id == plain.id) == 3  # repeated index queued once


def test_submit_validates(session: Session, device: str) -> None:
    with pytest.raises(ValueError, match=rf"invalid NB201 cell.*{INVALID[0]}"):
        queue.submit_campaign(session, device, [SINGLES[0], *INVALID])
    with pytest.raises(ValueError, match=r"unknown device 'nope_gpu_x_fp32'.*desktop_cpu_test_box_fp32"):
        queue.submit_campaign(session, "nope_gpu_x_fp32", [SINGLES[0]])
    with pytest.raises(ValueError, match="not an NB201 index"):
        queue.submit_campaign(session, device, [15625])
    with pytest.raises(ValueError, match="at least one"):
        queue.submit_campaign(session, device, [])
    for protocol, message in [
        ({"runs": 0}, "runs must be >= 1"),
        ({"group_size": 0}, "group_size must be >= 1"),
        ({"warmup": -1}, "warmup must be >= 0"),
        ({"runs": 2.5}, "runs must be an integer"),
        ({"repeats": 3}, "unknown protocol parameter.*repeats"),
    ]:
        with pytest.raises(ValueError, match=message):
            queue.submit_campaign(session, device, [SINGLES[0]], protocol=protocol)
    with pytest.raises(ValueError, match="runtime"):
        queue.submit_campaign(session, device, [SINGLES[0]], runtime="Lite RT")
    assert _count(session, Campaign) == 0 and _count(session, Job) == 0  # nothing half-written


def test_mobile_devices_default_to_10_runs(session: Session) -> None:
    ensure_device(session, "mobile_gpu_snapdragon_675_adreno_612_int8")
    session.commit()
    campaign = queue.submit_campaign(
        session, "mobile_gpu_snapdragon_675_adreno_612_int8", [SINGLES[0]], precision="int8"
    )
    assert campaign.protocol["runs"] == 10


# -- tokens and agents -----------------------------------------------------------------------------
def test_tokens_are_hashed_and_revocable(session: Session, device: str) -> None:
    token = create_agent_token(session, note="lab")
    stored = session.scalars(select(AgentToken.token_hash)).all()
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64
    assert verify_token(session, token) and not verify_token(session, token + "x")
    agent = queue.register_agent(session, token, device, "h", ["tf:fp32"], None)
    assert len(agent) == 36
    with pytest.raises(AuthError):
        queue.register_agent(session, "eat_wrong", device, "h", ["tf:fp32"], None)
    assert revoke_token(session, token) and not revoke_token(session, token)
    assert not verify_token(session, token)
    with pytest.raises(AuthError):
        queue.register_agent(session, token, device, "h", ["tf:fp32"], None)


def test_register_creates_a_new_device(session: Session, token: str) -> None:
    agent = queue.register_agent(session, token, "desktop_cpu_ryzen_7950x_fp32", "h", ["tf:fp32"], {"tf": True})
    overview = queue.agents_overview(session)
    assert [(a["id"], a["device"], a["state"]) for a in overview] == [(agent, "desktop_cpu_ryzen_7950x_fp32", "online")]
    later = utcnow() + timedelta(seconds=600)
    assert queue.agents_overview(session, offline_after_s=120, now=later)[0]["state"] == "offline"
    with pytest.raises(ValueError, match="capability"):
        queue.register_agent(session, token, "desktop_cpu_x_fp32", "h", ["tf"], None)
    with pytest.raises(ValueError, match="device name"):
        queue.register_agent(session, token, "Bad Name", "h", ["tf:fp32"], None)


# -- leasing ---------------------------------------------------------------------------------------
def test_lease_matches_device_and_capabilities(session: Session, device: str, agent: str, token: str) -> None:
    ensure_device(session, "desktop_gpu_other_fp32")
    session.commit()
    queue.submit_campaign(session, "desktop_gpu_other_fp32", [SINGLES[0]])
    queue.submit_campaign(session, device, [SINGLES[1]], runtime="tensorrt", precision="fp16")
    assert queue.lease_job(session, agent, device, CAPS) is None  # other device / missing capability
    wanted = queue.submit_campaign(session, device, [SINGLES[2]], runtime="tf")
    leased = queue.lease_job(session, agent, device, CAPS)
    assert leased is not None and leased.campaign_id == wanted.id and leased.arch_index == SINGLES[2]
    assert leased.arch_str == architecture_rows()[SINGLES[2]]["arch_str"]
    assert (leased.runtime, leased.precision, leased.attempt) == ("tf", "fp32", 1)
    assert leased.protocol["runs"] == 1000 and leased.canonical_key
    with pytest.raises(ValueError, match="registered for device"):
        queue.lease_job(session, agent, "desktop_gpu_other_fp32", CAPS)
    with pytest.raises(queue.UnknownAgent):
        queue.lease_job(session, "no-such-agent", device, CAPS)


def test_priority_then_fifo(session: Session, device: str, agent: str) -> None:
    low = queue.submit_campaign(session, device, SINGLES[0:2], priority=0)
    high = queue.submit_campaign(session, device, SINGLES[2:4], priority=5)
    cancelled = queue.submit_campaign(session, device, SINGLES[4:6], priority=9)
    assert queue.cancel_campaign(session, cancelled.id) == 2
    order = []
    while (leased := queue.lease_job(session, agent, device, CAPS)) is not None:
        order.append((leased.campaign_id, leased.arch_index))
    assert order == [(high.id, SINGLES[2]), (high.id, SINGLES[3]), (low.id, SINGLES[0]), (low.id, SINGLES[1])]
    progress = queue.campaign_progress(session, high.id)
    assert progress["state"] == "running" and progress["counts"]["leased"] == 2


def test_result_is_recorded_once(session: Session, device: str, agent: str) -> None:
    campaign = queue.submit_campaign(session, device, [SINGLES[0]])
    leased = queue.lease_job(session, agent, device, CAPS)
    assert leased is not None
    assert _report(session, leased, agent, 2.25) is ReportOutcome.ACCEPTED
    assert _report(session, leased, agent, 2.25) is ReportOutcome.DUPLICATE
    measurement = session.scalars(select(Measurement)).one()
    assert (measurement.job_id, measurement.latency_ms, measurement.provenance) == (leased.job_id, 2.25, "eagle")
    assert measurement.raw_ms == [2.25] * 10 and measurement.agent_id == agent
    progress = queue.campaign_progress(session, campaign.id)
    assert progress["state"] == "done" and progress["done_fraction"] == 1.0 and progress["eta_s"] == 0.0
    with pytest.raises(ValueError, match="positive finite"):
        _report(session, leased, agent, float("nan"))
    with pytest.raises(queue.UnknownJob):
        queue.report_result(session, 10**6, "x", agent, 1.0, None, None, None, "tf", "fp32")


def test_expired_lease_is_requeued_and_late_report_refused(
    session: Session, device: str, agent: str, token: str
) -> None:
    other = queue.register_agent(session, token, device, "host-b", list(CAPS), None)
    queue.submit_campaign(session, device, [SINGLES[0]], max_attempts=3)
    t0 = utcnow()
    first = queue.lease_job(session, agent, device, CAPS, lease_s=30, now=t0)
    assert first is not None
    assert queue.heartbeat(session, agent, first.job_id, first.lease_id, extend_s=60, now=t0 + timedelta(seconds=20))
    # extended to t0+80: still leased at t0+70
    assert queue.lease_job(session, other, device, CAPS, now=t0 + timedelta(seconds=70)) is None
    t1 = t0 + timedelta(seconds=100)
    assert not queue.heartbeat(session, agent, first.job_id, first.lease_id, now=t1)  # expired: gone
    assert _report(session, first, agent, now=t1) is ReportOutcome.STALE_LEASE  # expired, not re-leased yet
    second = queue.lease_job(session, other, device, CAPS, now=t1)
    assert second is not None and second.job_id == first.job_id and second.attempt == 2
    assert second.lease_id != first.lease_id
    assert _report(session, first, agent, now=t1) is ReportOutcome.STALE_LEASE  # re-leased to another agent
    assert _report(session, second, other, 3.0, now=t1) is ReportOutcome.ACCEPTED
    assert _report(session, first, agent, now=t1) is ReportOutcome.STALE_LEASE  # done by another lease
    assert _count(session, Measurement) == 1


def test_expiry_at_max_attempts_fails_with_last_error(session: Session, device: str, agent: str) -> None:
    campaign = queue.submit_campaign(session, device, [SINGLES[0]], max_attempts=2)
    t = utcnow()
    for _ in range(2):
        assert queue.lease_job(session, agent, device, CAPS, lease_s=10, now=t) is not None
        t += timedelta(seconds=11)
    assert queue.requeue_expired(session, now=t) == 1
    job = session.scalars(select(Job).execution_options(populate_existing=True)).one()
    assert (job.state, job.attempts, job.error_class) == ("failed", 2, "lease_expired")
    assert "expired" in (job.last_error or "") and "attempt 2 of 2" in (job.last_error or "")
    assert queue.campaign_progress(session, campaign.id)["state"] == "done"
    assert queue.lease_job(session, agent, device, CAPS, now=t) is None


def test_failures_requeue_then_fail(session: Session, device: str, agent: str) -> None:
    queue.submit_campaign(session, device, [SINGLES[0]], max_attempts=2)
    leased = queue.lease_job(session, agent, device, CAPS)
    assert leased is not None
    args = (session, leased.job_id, leased.lease_id, agent)
    assert queue.report_failure(*args, "convert", "converter crashed") is ReportOutcome.ACCEPTED
    assert queue.report_failure(*args, "convert", "converter crashed") is ReportOutcome.DUPLICATE
    with pytest.raises(ValueError, match="error class"):
        queue.report_failure(*args, "cosmic_ray", "?")
    again = queue.lease_job(session, agent, device, CAPS)
    assert again is not None and again.attempt == 2
    assert queue.report_failure(*args, "runtime", "late") is ReportOutcome.STALE_LEASE  # old lease
    assert (
        queue.report_failure(session, again.job_id, again.lease_id, agent, "runtime", "segfault in invoke")
        is ReportOutcome.ACCEPTED
    )
    job = session.scalars(select(Job).execution_options(populate_existing=True)).one()
    assert (job.state, job.error_class, job.last_error) == ("failed", "runtime", "segfault in invoke")
    assert queue.lease_job(session, agent, device, CAPS) is None


def test_unsupported_fails_at_once(session: Session, device: str, agent: str) -> None:
    campaign = queue.submit_campaign(session, device, [SINGLES[0], SINGLES[1]], max_attempts=5)
    leased = queue.lease_job(session, agent, device, CAPS)
    assert leased is not None
    outcome = queue.report_failure(
        session, leased.job_id, leased.lease_id, agent, "unsupported", "op AVERAGE_POOL_2D not supported"
    )
    assert outcome is ReportOutcome.ACCEPTED
    progress = queue.campaign_progress(session, campaign.id)
    assert progress["counts"]["failed"] == 1 and progress["counts"]["queued"] == 1
    assert progress["state"] == "running"


def test_cancel_makes_leases_stale(session: Session, device: str, agent: str) -> None:
    campaign = queue.submit_campaign(session, device, SINGLES[:3])
    leased = queue.lease_job(session, agent, device, CAPS)
    assert leased is not None
    assert queue.cancel_campaign(session, campaign.id) == 3
    assert queue.cancel_campaign(session, campaign.id) == 0
    assert not queue.heartbeat(session, agent, leased.job_id, leased.lease_id)
    assert _report(session, leased, agent) is ReportOutcome.STALE_LEASE
    progress = queue.campaign_progress(session, campaign.id)
    assert progress["state"] == "cancelled" and progress["counts"]["cancelled"] == 3
    with pytest.raises(queue.UnknownCampaign):
        queue.cancel_campaign(session, 999)


def test_progress_eta(session: Session, device: str, agent: str, token: str) -> None:
    campaign = queue.submit_campaign(session, device, SINGLES[:6])
    t = utcnow()
    for _ in range(2):  # two jobs of 10 s each
        leased = queue.lease_job(session, agent, device, CAPS, now=t)
        assert leased is not None
        t += timedelta(seconds=10)
        assert _report(session, leased, agent, now=t) is ReportOutcome.ACCEPTED
    other = queue.register_agent(session, token, device, "host-b", list(CAPS), None)
    assert queue.lease_job(session, agent, device, CAPS, now=t) is not None
    assert queue.lease_job(session, other, device, CAPS, now=t) is not None
    progress = queue.campaign_progress(session, campaign.id)
    assert progress["total"] == 6 and progress["counts"] == {
        "queued": 2,
        "leased": 2,
        "done": 2,
        "failed": 0,
        "cancelled": 0,
    }
    assert progress["mean_job_s"] == pytest.approx(10.0)
    assert progress["active_agents"] == 2
    assert progress["eta_s"] == pytest.approx(10.0 * 4 / 2)
    assert progress["done_fraction"] == pytest.approx(2 / 6)


def test_requeue_expired_sweeps_campaigns_left_open(session: Session, device: str, agent: str) -> None:
    campaign = queue.submit_campaign(session, device, SINGLES[:2])
    # A crash between a job's commit and the campaign check leaves a campaign open with no open job.
    session.execute(update(Job).where(Job.campaign_id == campaign.id).values(state="done"))
    session.commit()
    assert queue.campaign_progress(session, campaign.id)["state"] == "queued"
    assert queue.requeue_expired(session) == 0
    assert queue.campaign_progress(session, campaign.id)["state"] == "done"
