"""Group commit (PostgreSQL): leases and reports arriving together run as one statement, with the same
answers as the single path, and whatever a batch cannot settle goes back to the single path."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from latbench.store import queue
from latbench.store.archs import architecture_rows
from latbench.store.group_commit import SINGLE, Combiner, GroupCommit
from latbench.store.models import Job, Measurement, utcnow
from latbench.store.queue import ReportOutcome

from .conftest import CAPS

# -- the combiner (no database) ---------------------------------------------------------------------


def _wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    """Poll instead of sleeping a fixed time: the machine may be loaded."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_combiner_batches_what_arrives_while_a_batch_runs() -> None:
    release = threading.Event()
    sizes: list[int] = []

    def run(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        if len(sizes) == 1:
            release.wait(5)  # the first batch is slow: the others pile up meanwhile
        return [x * 10 for x in batch]

    combiner: Combiner[int, int] = Combiner("test", run)
    results: dict[int, Any] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, combiner.call(i))) for i in range(9)]
    threads[0].start()
    _wait_for(lambda: len(sizes) == 1)  # the first batch is running
    for t in threads[1:]:
        t.start()
    _wait_for(lambda: len(combiner._pending) == 8)  # the others queued behind it
    release.set()
    for t in threads:
        t.join(5)
    combiner.close()
    assert results == {i: i * 10 for i in range(9)}  # each caller gets its own result
    assert sizes[0] == 1 and sizes[1] == 8, sizes  # the 8 that waited went as one batch
    assert combiner.batches == 2 and combiner.requests == 9


def test_combiner_failed_batch_sends_every_caller_to_the_single_path() -> None:
    def run(batch: list[int]) -> list[int]:
        raise RuntimeError("database went away")

    combiner: Combiner[int, int] = Combiner("test", run)
    assert combiner.call(1) is SINGLE
    assert combiner.failures == 1
    combiner.close()
    assert combiner.call(2) is SINGLE  # closed: nothing waits on a stopped thread


def test_combiner_result_count_must_match() -> None:
    combiner: Combiner[int, int] = Combiner("test", lambda batch: [])
    assert combiner.call(1) is SINGLE
    combiner.close()


def test_combiner_rejects_empty_batches() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Combiner("test", lambda batch: batch, max_batch=0)


# -- against PostgreSQL -----------------------------------------------------------------------------


# Group commit is the PostgreSQL path (SQLite runs the single path, tested elsewhere).
postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def group(engine: Engine, factory: sessionmaker[Session]) -> Any:
    assert engine.dialect.name == "postgresql"
    committer = GroupCommit(factory)
    yield committer
    committer.close()


def _archs(n: int) -> list[int]:
    return [r["index"] for r in architecture_rows() if r["valid"]][:n]


def _report(group: GroupCommit, leased: queue.LeasedJob, agent: str, latency: float = 2.0) -> Any:
    return group.report(leased.job_id, leased.lease_id, agent, latency, {"n": 3}, [latency] * 3, {"tf": "x"}, "", "")


@postgresql_only
def test_many_agents_at_once_each_job_leased_and_recorded_once(
    group: GroupCommit, factory: sessionmaker[Session], device: str, token: str
) -> None:
    with factory() as session:
        campaign = queue.submit_campaign(session, device, _archs(120))
        agents = [queue.register_agent(session, token, device, f"h{i}", list(CAPS), None) for i in range(12)]
        total = session.scalar(select(func.count()).select_from(Job))  # identical graphs are queued once
    assert total is not None and total > 60
    leased_ids: list[int] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def agent_loop(agent: str) -> None:
        try:
            while True:
                leased = group.lease(agent, device, CAPS, 60.0)
                assert leased is not SINGLE
                if leased is None:
                    return
                outcome = _report(group, leased, agent, 1.0 + leased.arch_index / 1e4)
                again = _report(group, leased, agent)  # a repeat: refused here, the single path says why
                with lock:
                    leased_ids.append(leased.job_id)
                    outcomes[str(outcome)] += 1
                    outcomes["repeat_single" if again is SINGLE else "repeat_recorded"] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=agent_loop, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(leased_ids) == sorted(set(leased_ids)) and len(leased_ids) == total  # none twice, none lost
    assert outcomes == {str(ReportOutcome.ACCEPTED): total, "repeat_single": total}
    assert group.leases.batches < group.leases.requests  # they really went together
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == total
        assert session.scalar(select(func.count(func.distinct(Measurement.job_id)))) == total
        progress = queue.campaign_progress(session, campaign.id)
        assert progress["state"] == "done" and progress["counts"]["done"] == total
        row = session.execute(select(Measurement.runtime, Measurement.precision, Measurement.raw_ms)).first()
        assert row is not None and (row.runtime, row.precision) == (campaign.runtime, campaign.precision)
        assert row.raw_ms == [row.raw_ms[0]] * 3
    # The single path tells the repeat apart: recorded before under this lease.
    with factory() as session:
        job = session.scalars(select(Job).limit(1)).one()
        repeat = queue.report_result(session, job.id, job.lease_id, job.lease_owner, 2.0, None, None, None, "", "")
        assert repeat is ReportOutcome.DUPLICATE


@postgresql_only
def test_one_job_twice_in_a_batch_is_recorded_once(
    group: GroupCommit, factory: sessionmaker[Session], device: str, agent: str
) -> None:
    with factory() as session:
        queue.submit_campaign(session, device, _archs(1))
    leased = group.lease(agent, device, CAPS, 60.0)
    assert isinstance(leased, queue.LeasedJob)
    args = dict(
        job_id=leased.job_id,
        lease_id=leased.lease_id,
        agent_id=agent,
        latency_ms=2.0,
        stats="{}",
        raw_ms="null",
        versions="null",
        runtime="",
        precision="",
    )
    assert group._report_batch([args, dict(args)]) == [ReportOutcome.ACCEPTED, SINGLE]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 1


@postgresql_only
def test_what_a_batch_cannot_settle_goes_to_the_single_path(
    group: GroupCommit, factory: sessionmaker[Session], device: str, agent: str, token: str
) -> None:
    with factory() as session:
        queue.submit_campaign(session, device, _archs(3))
        other = queue.register_agent(session, token, "desktop_cpu_other_box_fp32", "h", list(CAPS), None)
    # An unknown agent, and an agent of another device: the single path raises the readable error.
    assert group.lease("no-such-agent", device, CAPS, 60.0) is SINGLE
    assert group.lease(other, device, CAPS, 60.0) is SINGLE
    # A stale lease: not recorded.
    leased = group.lease(agent, device, CAPS, 60.0)
    assert isinstance(leased, queue.LeasedJob)
    stale = group.report(leased.job_id, "not-this-lease", agent, 2.0, None, None, None, "", "")
    assert stale is SINGLE
    # An expired lease on the device: the single path requeues it first.
    with factory() as session:
        session.execute(update(Job).where(Job.id == leased.job_id).values(lease_expires_at=utcnow() - timedelta(1)))
        session.commit()
    assert group.lease(agent, device, CAPS, 60.0) is SINGLE
    with factory() as session:
        again = queue.lease_job(session, agent, device, CAPS)
    assert again is not None
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 0
    # Bad values are refused before any batch, as on the single path.
    with pytest.raises(ValueError, match="latency_ms"):
        group.report(again.job_id, again.lease_id, agent, float("nan"), None, None, None, "", "")
