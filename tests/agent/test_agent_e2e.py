"""The agent against a real gRPC server on loopback: real models, crashes and hangs, a server restart,
SIGTERM, and a refused token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_agent.backends import create_backend
from eagle_agent.client import AgentClient
from eagle_agent.config import AgentConfig
from eagle_agent.loop import EXIT_OK, AgentLoop
from eagle_agent.main import main
from eagle_agent.outbox import Outbox
from eagle_agent.worker import ChildWorker
from eagle_server.grpc_service import GrpcServer
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.tokens import create_agent_token
from tests.grpc.helpers import DEVICE, add_device, count_measurements, jobs, measurements, start_server, submit

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def agent_process(port: int, token: str, workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, EAGLE_AGENT_TOKEN=token)
    argv = [sys.executable, "-m", "eagle_agent.main", "--server", f"127.0.0.1:{port}", "--workdir", str(workdir)]
    log = (workdir.parent / f"{workdir.name}.log").open("wb")
    return subprocess.Popen([*argv, *args], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def log_of(workdir: Path) -> str:
    return (workdir.parent / f"{workdir.name}.log").read_text(errors="replace")


def make_loop(port: int, token: str, workdir: Path, backend: str = "debug", **options: Any) -> AgentLoop:
    """An agent loop in this process (the worker is still a child process), to look at its counters."""
    config = AgentConfig(
        server=f"127.0.0.1:{port}",
        token=token,
        device=DEVICE,
        backend=backend,
        backend_options=options.pop("backend_options", {}),
        workdir=workdir,
        lease_wait_s=1.0,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
        flush_timeout_s=5.0,
        startup_timeout_s=120.0,
        **options,
    )
    impl = create_backend(config.backend_name, config.backend_options, config.precisions)
    client = AgentClient(config.server, token, DEVICE, impl.capabilities(), backend=impl.name, check=impl.check())
    worker = ChildWorker(config.backend_name, config.backend_options, config.precisions, workdir)
    return AgentLoop(config, client, worker, Outbox(workdir))


def run_in_thread(loop: AgentLoop) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(loop.run()), daemon=True)
    thread.start()
    return thread, codes


# -- real models -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_agent_process_measures_real_tf_models(
    factory: sessionmaker[Session], token: str, server: GrpcServer, tmp_path: Path
) -> None:
    submit(factory, [0, 1], runtime="tf", runs=20)
    workdir = tmp_path / "agent"
    proc = agent_process(server.port, token, workdir, "--device", DEVICE, "--runtime", "tf", "--once", "2")
    assert proc.wait(timeout=400) == 0, log_of(workdir)
    rows = measurements(factory)
    assert sorted(m.arch_index for m in rows) == [0, 1]
    for m in rows:
        assert 0 < m.latency_ms < 1000 and len(m.raw_ms) == 20
        assert m.stats["runs"] == 20 and m.stats["build_s"] > 0
        assert m.versions["tensorflow"] and (m.runtime, m.precision) == ("tf", "fp32")
    assert [j.state for j in jobs(factory)] == ["done", "done"]
    assert not Outbox(workdir).pending()


@pytest.mark.slow
def test_agent_process_measures_a_real_litert_int8_model(
    factory: sessionmaker[Session], token: str, server: GrpcServer, tmp_path: Path
) -> None:
    device = add_device(factory, "desktop_cpu_test_box_int8")
    submit(factory, [2], runtime="litert", precision="int8", runs=20, device=device)
    workdir = tmp_path / "agent"
    args = ("--device", device, "--runtime", "litert", "--precision", "int8", "--once", "1")
    proc = agent_process(server.port, token, workdir, *args)
    assert proc.wait(timeout=400) == 0, log_of(workdir)
    (m,) = measurements(factory)
    assert m.arch_index == 2 and (m.runtime, m.precision) == ("litert", "int8") and m.stats["convert_s"] > 0
    assert len(list((workdir / "artifacts").glob("*_int8.tflite"))) == 1


# -- failures ----------------------------------------------------------------------------------------
def test_crash_and_hang_are_classified_and_retried(
    factory: sessionmaker[Session], token: str, server: GrpcServer, tmp_path: Path
) -> None:
    campaign = submit(factory, [2, 3, 4], runs=20)
    options = {"crash_archs": [3], "hang_archs": [4]}  # misbehave on the first attempt only
    loop = make_loop(server.port, token, tmp_path / "agent", backend_options=options, once=5, job_timeout_s=2.0)
    assert loop.run() == EXIT_OK
    by_arch = {j.arch_index: j for j in jobs(factory, campaign)}
    assert {a: (j.state, j.attempts) for a, j in by_arch.items()} == {2: ("done", 1), 3: ("done", 2), 4: ("done", 2)}
    assert by_arch[3].error_class == "runtime" and "SIGABRT" in by_arch[3].last_error
    assert by_arch[4].error_class == "timeout" and "ran past the agent's limit of 2 s" in by_arch[4].last_error
    assert count_measurements(factory) == 3
    assert (loop.stats.results, loop.stats.failures, loop.stats.jobs) == (3, 2, 5)


def test_failure_after_max_attempts_keeps_the_last_error(
    factory: sessionmaker[Session], token: str, server: GrpcServer, tmp_path: Path
) -> None:
    submit(factory, [5], max_attempts=2)
    options = {"fail_archs": {"5": "convert"}, "misbehave_attempts": 99}
    loop = make_loop(server.port, token, tmp_path / "agent", backend_options=options, once=2)
    assert loop.run() == EXIT_OK
    (job,) = jobs(factory)
    assert (job.state, job.attempts, job.error_class) == ("failed", 2, "convert")
    assert "scripted convert failure" in job.last_error and count_measurements(factory) == 0


# -- the server goes away ----------------------------------------------------------------------------
def test_server_restart_the_outbox_is_delivered_exactly_once(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    factory = session_factory(engine)
    add_device(factory)
    with factory() as session:
        token = create_agent_token(session)
    submit(factory, [6])
    first = start_server(factory)
    port = first.port
    loop = make_loop(port, token, tmp_path / "agent", backend_options={"sleep_s": 2.0}, once=1)
    thread, codes = run_in_thread(loop)
    second: GrpcServer | None = None
    try:
        wait_for(lambda: jobs(factory)[0].state == "leased", 60, "the job to be leased")
        first.stop(0).wait(5)  # the server goes away while the agent measures
        wait_for(lambda: len(loop.outbox) == 1, 30, "the result in the outbox")
        wait_for(lambda: loop.stats.reconnects >= 1, 30, "a failed delivery")
        assert count_measurements(factory) == 0
        second = start_server(factory, port=port)
        thread.join(60)
        assert codes == [EXIT_OK]
        assert count_measurements(factory) == 1 and jobs(factory)[0].state == "done"
        assert len(Outbox(tmp_path / "agent")) == 0 and loop.stats.results == 1
        assert loop.outbox.pending() == []
        # The answer to a delivery may get lost: re-sending the same report must not record it again.
        replay = make_loop(port, token, tmp_path / "replay")
        replay.client.registration = loop.client.registration
        entry = measurements(factory)[0]
        again = {
            "kind": "result",
            "job_id": entry.job_id,
            "lease_id": entry.lease_id,
            "latency_ms": 9.0,
            "stats": {},
            "raw_ms": [9.0],
            "versions": {},
            "runtime": "tf",
            "precision": "fp32",
        }
        assert replay.client.report(again) == "duplicate"
        replay.client.close()
        assert count_measurements(factory) == 1 and measurements(factory)[0].latency_ms != 9.0
    finally:
        loop.request_stop()
        loop.request_stop()
        thread.join(30)
        if second is not None:
            second.stop(0)
        engine.dispose()


def test_agent_started_before_the_server_waits_for_it(
    factory: sessionmaker[Session], token: str, tmp_path: Path
) -> None:
    submit(factory, [2])
    probe = start_server(factory)
    port = probe.port
    probe.stop(0).wait(5)
    loop = make_loop(port, token, tmp_path / "agent", once=1)
    thread, codes = run_in_thread(loop)
    try:
        wait_for(lambda: loop.stats.reconnects >= 2, 30, "failed registrations")
        server = start_server(factory, port=port)
        thread.join(60)
        assert codes == [EXIT_OK] and count_measurements(factory) == 1
        server.stop(0)
    finally:
        loop.request_stop()
        loop.request_stop()


# -- signals, tokens, settings -----------------------------------------------------------------------
def test_sigterm_finishes_the_current_job_then_exits(
    factory: sessionmaker[Session], token: str, server: GrpcServer, tmp_path: Path
) -> None:
    submit(factory, [2, 3])
    config = tmp_path / "agent.toml"
    config.write_text(f'device = "{DEVICE}"\nbackend = "debug"\n[backend_options]\nsleep_s = 3.0\n')
    workdir = tmp_path / "agent"
    proc = agent_process(server.port, token, workdir, "--config", str(config))
    try:
        wait_for(lambda: any(j.state == "leased" for j in jobs(factory)), 60, "a leased job")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_of(workdir)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [j.state for j in jobs(factory)] == ["done", "queued"]  # finished one, took no other
    assert count_measurements(factory) == 1
    assert "finishing the current job" in log_of(workdir)


def test_bad_token_stops_the_agent_with_a_clear_message(server: GrpcServer, token: str, tmp_path: Path) -> None:
    workdir = tmp_path / "agent"
    proc = agent_process(server.port, "eat_wrong", workdir, "--device", DEVICE, "--backend", "debug")
    assert proc.wait(timeout=60) == 3
    assert "refused this agent: agent token refused" in log_of(workdir)


def test_main_reports_setting_errors_and_the_backend_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--server", "127.0.0.1:1", "--workdir", str(tmp_path)]) == 2
    assert "a token is needed" in capsys.readouterr().err
    assert main(["--server", "127.0.0.1:1", "--token", "t", "--backend", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err
    assert main(["--server", "127.0.0.1:1", "--token", "t", "--runtime", "litert", "--check"]) == 0
    check = json.loads(capsys.readouterr().out)
    assert check["ok"] and check["backend"] == "cpu_litert" and check["capabilities"] == ["litert:fp32"]


def test_two_agents_cannot_share_a_workdir(token: str, server: GrpcServer, tmp_path: Path) -> None:
    from eagle_agent.config import ConfigError
    from eagle_agent.main import WorkdirLock

    with WorkdirLock(tmp_path), pytest.raises(ConfigError, match="in use by agent pid"):
        WorkdirLock(tmp_path).__enter__()


def test_sigterm_while_idle_exits_at_once(
    factory: sessionmaker[Session], token: str, server: GrpcServer, tmp_path: Path
) -> None:
    workdir = tmp_path / "agent"
    proc = agent_process(server.port, token, workdir, "--device", DEVICE, "--backend", "debug")
    try:
        wait_for(lambda: "registered with" in log_of(workdir), 60, "the agent to register")
        time.sleep(0.3)  # inside a long poll now
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_of(workdir)
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_second_stop_request_abandons_the_running_job(
    factory: sessionmaker[Session], token: str, server: GrpcServer, tmp_path: Path
) -> None:
    submit(factory, [4])
    loop = make_loop(server.port, token, tmp_path / "agent", backend_options={"hang_archs": [4]}, job_timeout_s=120)
    thread, codes = run_in_thread(loop)
    wait_for(lambda: jobs(factory)[0].state == "leased", 60, "the job to be leased")
    time.sleep(0.5)
    loop.request_stop()
    thread.join(1.5)
    assert thread.is_alive()  # the first request waits for the job
    loop.request_stop()
    thread.join(15)
    assert not thread.is_alive() and codes == [EXIT_OK]
    assert loop.stats.abandoned == 1 and not loop.outbox.pending()
    assert jobs(factory)[0].state == "leased"  # handed back by letting the lease lapse
