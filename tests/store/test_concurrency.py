"""Many agents leasing and reporting against one database at once (SQLite and PostgreSQL).

Threads stand in for agents; each has its own session (connection). Some results are reported twice,
some attempts fail, and some leases are abandoned (the agent "dies") and expire. In the end every job
must be done exactly once: one measurement per job, none lost, none duplicated.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from latbench.store import queue
from latbench.store.archs import architecture_rows
from latbench.store.models import Job, Measurement
from latbench.store.queue import ReportOutcome

from .conftest import CAPS

AGENTS = 8
LEASE_S = 1.0  # short, so abandoned jobs come back within the test
DEADLINE_S = 120.0


def _agent_loop(
    factory: sessionmaker[Session],
    agent: str,
    device: str,
    campaign_id: int,
    seed: int,
    outcomes: Counter[str],
    lock: threading.Lock,
    errors: list[BaseException],
) -> None:
    rng = random.Random(seed)
    deadline = time.monotonic() + DEADLINE_S
    try:
        with factory() as session:
            while time.monotonic() < deadline:
                leased = queue.lease_job(session, agent, device, CAPS, lease_s=LEASE_S)
                if leased is None:
                    if queue.campaign_progress(session, campaign_id)["state"] == "done":
                        return
                    time.sleep(0.05)
                    continue
                roll = rng.random()
                if roll < 0.1:
                    with lock:
                        outcomes["abandoned"] += 1
                    continue  # the agent "died": the lease expires and the job comes back
                if roll < 0.25:
                    outcome = queue.report_failure(
                        session, leased.job_id, leased.lease_id, agent, "runtime", "flaky device"
                    )
                    with lock:
                        outcomes[f"failure_{outcome.value}"] += 1
                    continue
                latency = 1.0 + leased.arch_index / 1000
                args = (session, leased.job_id, leased.lease_id, agent, latency, {"n": 10}, [latency] * 10)
                outcome = queue.report_result(*args, {"tf": "x"}, leased.runtime, leased.precision)
                with lock:
                    outcomes[f"result_{outcome.value}"] += 1
                if rng.random() < 0.3:  # the acknowledgement was lost: the agent reports again
                    again = queue.report_result(*args, {"tf": "x"}, leased.runtime, leased.precision)
                    with lock:
                        outcomes[f"repeat_{again.value}"] += 1
    except BaseException as exc:  # surfaced by the test
        errors.append(exc)


def test_many_agents_each_job_done_exactly_once(factory: sessionmaker[Session], device: str, token: str) -> None:
    archs = [r["index"] for r in architecture_rows() if r["valid"]][:400]
    with factory() as session:
        campaign = queue.submit_campaign(session, device, archs, max_attempts=100)
        agents = [queue.register_agent(session, token, device, f"h{i}", list(CAPS), None) for i in range(AGENTS)]
        jobs = session.scalar(select(func.count()).select_from(Job).where(Job.campaign_id == campaign.id))
    assert jobs and jobs > 100

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_agent_loop, args=(factory, agent, device, campaign.id, seed, outcomes, lock, errors))
        for seed, agent in enumerate(agents)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S + 30)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)

    with factory() as session:
        progress = queue.campaign_progress(session, campaign.id)
        assert progress["state"] == "done", progress
        assert progress["counts"]["done"] == jobs, progress
        rows = session.execute(select(Measurement.job_id, Measurement.arch_index, Measurement.latency_ms)).all()
        job_arch = dict(session.execute(select(Job.id, Job.arch_index).where(Job.campaign_id == campaign.id)).all())
    assert len(rows) == jobs  # nothing lost, nothing duplicated
    assert len({job_id for job_id, _, _ in rows}) == jobs
    assert all(job_arch[job_id] == arch and latency == 1.0 + arch / 1000 for job_id, arch, latency in rows)
    assert outcomes[f"result_{ReportOutcome.ACCEPTED.value}"] == jobs
    assert outcomes[f"repeat_{ReportOutcome.ACCEPTED.value}"] == 0
    assert outcomes[f"repeat_{ReportOutcome.DUPLICATE.value}"] > 0
    assert outcomes["abandoned"] > 0 and outcomes[f"failure_{ReportOutcome.ACCEPTED.value}"] > 0
