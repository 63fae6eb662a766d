"""The lease and report hot path (Core statements built once): few statements per job, the same answers
as the ORM path had, and racing repeats of one report recorded once (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from latbench.store import queue
from latbench.store.models import Architecture, Campaign, Measurement
from latbench.store.queue import ReportOutcome

from .conftest import CAPS


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` meanwhile, without BEGIN (SQLite's is a statement)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if not sql.lstrip().upper().startswith("BEGIN"):
            seen.append(sql)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _report(session: Session, leased: queue.LeasedJob, agent: str, runtime: str = "tf", precision: str = "fp32"):
    return queue.report_result(
        session, leased.job_id, leased.lease_id, agent, 2.0, {"n": 10}, [2.0] * 10, {"tf": "x"}, runtime, precision
    )


def test_a_job_costs_few_statements(engine: Engine, session: Session, device: str, agent: str) -> None:
    queue.submit_campaign(session, device, [0, 1, 2], runtime="tf")
    with statements(engine) as first_lease:
        first = queue.lease_job(session, agent, device, CAPS)
    assert first is not None
    # agent, expired leases, the job, the campaign, and once per campaign: queued -> running
    assert len(first_lease) == 5, first_lease
    with statements(engine) as lease:
        second = queue.lease_job(session, agent, device, CAPS)
    assert second is not None and len(lease) == 4, lease
    with statements(engine) as report:
        assert _report(session, second, agent) is ReportOutcome.ACCEPTED
    assert len(report) == 3, report  # finish the job, insert the measurement, is the campaign done?


def test_the_hot_path_answers_as_before(session: Session, device: str, agent: str) -> None:
    campaign = queue.submit_campaign(session, device, [7], runtime="tf", protocol={"runs": 30})
    # One capability takes its own statement (no list): it must still match only its requirement.
    assert queue.lease_job(session, agent, device, ["litert:fp32"]) is None
    leased = queue.lease_job(session, agent, device, ["tf:fp32"], lease_s=45)
    assert leased is not None
    arch = session.scalar(select(Architecture).where(Architecture.index == 7))
    assert arch is not None and leased.arch_str == arch.arch_str and leased.canonical_key == arch.canonical_key
    assert (leased.campaign_id, leased.attempt, leased.max_attempts, leased.device) == (campaign.id, 1, 3, device)
    assert leased.protocol["runs"] == 30
    assert leased.lease_expires_at is not None and leased.lease_expires_at.tzinfo is not None
    state = session.scalar(select(Campaign.state).where(Campaign.id == campaign.id))
    assert state == "running"
    # A report without runtime and precision takes the campaign's.
    assert _report(session, leased, agent, runtime="", precision="") is ReportOutcome.ACCEPTED
    row = session.scalars(select(Measurement)).one()
    assert (row.runtime, row.precision, row.job_id, row.lease_id) == ("tf", "fp32", leased.job_id, leased.lease_id)
    assert row.stats == {"n": 10} and row.versions == {"tf": "x"} and row.measured_at.tzinfo is not None
    assert queue.campaign_progress(session, campaign.id)["state"] == "done"


def test_racing_repeats_of_a_report_are_recorded_once(
    factory: sessionmaker[Session], session: Session, device: str, agent: str
) -> None:
    queue.submit_campaign(session, device, list(range(6)), runtime="tf")
    for _ in range(6):
        leased = queue.lease_job(session, agent, device, CAPS)
        assert leased is not None
        outcomes: list[ReportOutcome] = []
        barrier = threading.Barrier(4)

        def send(job: queue.LeasedJob, barrier: threading.Barrier, outcomes: list[ReportOutcome]) -> None:
            with factory() as own:
                barrier.wait()
                outcomes.append(_report(own, job, agent))

        threads = [threading.Thread(target=send, args=(leased, barrier, outcomes)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) == sorted([ReportOutcome.ACCEPTED] + [ReportOutcome.DUPLICATE] * 3)
    assert len(session.scalars(select(Measurement)).all()) == 6
