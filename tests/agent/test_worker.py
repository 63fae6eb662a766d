"""The worker process: results, crashes, hangs, abandoning, recycling (debug backend: no TensorFlow)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from eagle_agent.backends import ErrorClass
from eagle_agent.worker import ChildWorker

from .test_backends import job


def _worker(tmp_path: Path, options: dict[str, Any] | None = None, **kw: Any) -> ChildWorker:
    return ChildWorker("debug", options or {}, ["fp32"], tmp_path, startup_timeout_s=60, **kw)


def test_results_crash_and_recovery(tmp_path: Path) -> None:
    worker = _worker(tmp_path, {"crash_archs": [3], "raise_archs": [4]})
    try:
        assert worker.wait_ready() == "" and worker.ready
        first_pid = worker.pid
        ok = worker.run(job(2), timeout_s=30)
        assert ok.ok and ok.result is not None and ok.result["latency_ms"] > 0
        assert ok.to_report()["kind"] == "result" and ok.to_report()["runtime"] == "tf"

        crashed = worker.run(job(3), timeout_s=30)
        assert not crashed.ok and crashed.error_class == ErrorClass.RUNTIME
        assert "died while measuring job 1" in crashed.message and "SIGABRT" in crashed.message
        assert crashed.to_report() == {
            "job_id": 1,
            "lease_id": "L",
            "kind": "failure",
            "error_class": "runtime",
            "message": crashed.message,
        }

        raised = worker.run(job(4), timeout_s=30)  # a Python exception does not kill the worker
        assert raised.error_class == ErrorClass.RUNTIME and "scripted runtime error" in raised.message

        again = worker.run(job(3, attempt=2), timeout_s=30)  # a fresh child takes the retry
        assert again.ok and worker.pid != first_pid and worker.restarts == 1
    finally:
        worker.stop()


def test_hang_times_out_and_the_child_is_killed(tmp_path: Path) -> None:
    worker = _worker(tmp_path, {"hang_archs": [6]})
    try:
        assert worker.wait_ready() == ""
        pid = worker.pid
        t0 = time.monotonic()
        outcome = worker.run(job(6), timeout_s=1.5)
        assert 1.4 < time.monotonic() - t0 < 10
        assert outcome.error_class == ErrorClass.TIMEOUT and "ran past the agent's limit of 1.5 s" in outcome.message
        assert not worker.ready and pid != worker.pid
        assert worker.run(job(7), timeout_s=30).ok
    finally:
        worker.stop()


def test_ticks_run_while_a_job_runs_and_can_abandon_it(tmp_path: Path) -> None:
    worker = _worker(tmp_path, {"sleep_s": 1.0, "hang_archs": [9]})
    try:
        assert worker.wait_ready() == ""
        ticks: list[float] = []
        outcome = worker.run(
            job(2), timeout_s=30, tick=lambda: ticks.append(time.monotonic()) or True, tick_every_s=0.2
        )
        assert outcome.ok and 3 <= len(ticks) <= 7

        outcome = worker.run(job(9), timeout_s=30, tick=lambda: False, tick_every_s=0.2)  # lease lost
        assert outcome.abandoned and not outcome.ok
        with pytest.raises(ValueError, match="nothing to report"):
            outcome.to_report()
    finally:
        worker.stop()


def test_a_backend_that_cannot_start_is_reported_before_any_job(tmp_path: Path) -> None:
    worker = ChildWorker("cpu_tf", {}, ["int8"], tmp_path, startup_timeout_s=60)  # cpu_tf has no int8
    problem = worker.wait_ready()
    assert problem.startswith("backend cpu_tf could not start: ValueError: backend cpu_tf cannot run precision int8")
    outcome = worker.run(job(2), timeout_s=10)
    assert outcome.error_class == ErrorClass.RUNTIME and "could not start" in outcome.message
    worker.stop()


def test_the_child_is_recycled_after_max_jobs(tmp_path: Path) -> None:
    worker = _worker(tmp_path, max_jobs_per_child=2)
    try:
        pids = []
        for index in (1, 2, 3):
            worker.wait_ready()
            pids.append(worker.pid)
            assert worker.run(job(index), timeout_s=30).ok
        assert pids[0] == pids[1] != pids[2]
    finally:
        worker.stop()
