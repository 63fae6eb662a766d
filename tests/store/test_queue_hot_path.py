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
    pg = engine.dialect.name == "postgresql"
    with statements(engine) as first_lease:
        first = queue.lease_job(session, agent, device, CAPS)
    assert first is not None
    # PostgreSQL: one statement in autocommit. SQLite: agent, expired leases, the job, the campaign,
    # and once per campaign: queued -> running.
    assert len(first_lease) == (1 if pg else 5), first_lease
    with statements(engine) as lease:
        second = queue.lease_job(session, agent, device, CAPS)
    assert second is not None and len(lease) == (1 if pg else 4), lease
    with statements(engine) as report:
        assert _report(session, second, agent) is ReportOutcome.ACCEPTED
    # PostgreSQL: finish + insert in one statement, then the campaign-done check; SQLite: finish, insert,
    # campaign-done check, all in one transaction.
    assert len(report) == (2 if pg else 3), report


def test_postgresql_hot_path_has_no_transaction_round_trips(db_url: str, tmp_path: Any) -> None:
    """On PostgreSQL a lease and a report run in autocommit: no BEGIN, COMMIT or ping round trips."""
    if not db_url.startswith("postgresql"):
        return  # SQLite has no round trips to save; the test above counts its statements
    from latbench.store.db import make_engine, session_factory, upgrade
    from latbench.store.devices import ensure_device
    from latbench.store.tokens import create_agent_token

    engine = make_engine(db_url)
    upgrade(engine)
    commands: list[str] = []
    try:
        with session_factory(engine)() as session:
            ensure_device(session, "desktop_cpu_rt_box_fp32", hardware="box")
            session.commit()
            agent_id = queue.register_agent(
                session, create_agent_token(session), "desktop_cpu_rt_box_fp32", "h", ["tf:fp32"], None
            )
            queue.submit_campaign(session, "desktop_cpu_rt_box_fp32", [0, 1], runtime="tf")
            raw = session.connection().connection.dbapi_connection
            session.commit()
            assert raw is not None
            # Every command psycopg sends on its own (BEGIN, COMMIT, ROLLBACK) goes through _exec_command.
            original = type(raw)._exec_command

            def spy(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
                commands.append(bytes(command).decode() if isinstance(command, bytes | bytearray) else str(command))
                return original(self, command, *args, **kwargs)

            type(raw)._exec_command = spy  # type: ignore[method-assign]
            try:
                leased = queue.lease_job(session, agent_id, "desktop_cpu_rt_box_fp32", ["tf:fp32"])
                assert leased is not None
                assert _report(session, leased, agent_id) is ReportOutcome.ACCEPTED
            finally:
                type(raw)._exec_command = original  # type: ignore[method-assign]
    finally:
        engine.dispose()
    assert commands == [], commands


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
