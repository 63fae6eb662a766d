"""``eagle serve --grpc-workers 2``: a real server whose agent service runs in two processes on one port.

Simulated agents (raw gRPC, one channel each, so the kernel spreads them over both workers) finish a
campaign with exactly one measurement per job; then the server is killed with SIGKILL and its workers
must be gone within seconds. Also the port reservation and the worker restart, on a live supervisor.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select

from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
from eagle_agent.proto.eagle.v1 import agent_pb2_grpc as pb_grpc
from eagle_server.grpc_service import AgentServiceSettings
from eagle_server.grpc_workers import GrpcWorkers, default_workers, reserve_port
from latbench.store import queue
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.devices import ensure_device
from latbench.store.models import Campaign, Job, Measurement
from latbench.store.tokens import create_agent_token
from tests._helpers import distinct_valid

EAGLE = [sys.executable, "-c", "import sys; from latbench.cli import main; sys.exit(main())"]
DEVICE = "desktop_cpu_workers_box_fp32"
CAPS = ["tf:fp32"]
JOBS = 40
AGENTS = 6


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie (dead, unreaped) counts as gone
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _prepare(url: str) -> tuple[str, int]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        with session_factory(engine)() as session:
            ensure_device(session, DEVICE, hardware="workers box")
            session.commit()
            token = create_agent_token(session, note="workers test")
            campaign = queue.submit_campaign(
                session, DEVICE, distinct_valid(JOBS), runtime="tf", protocol={"runs": 10}, dedupe=False
            )
            return token, campaign.id
    finally:
        engine.dispose()


def _agent(port: int, token: str, out: Counter[str], errors: list[str]) -> None:
    """Register, then lease and report at once until the queue is empty."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.AgentServiceStub(channel)
        reg = stub.Register(
            pb.RegisterRequest(token=token, device=DEVICE, hostname="t", capabilities=CAPS, backend="instant"),
            timeout=30,
        )
        ask = pb.LeaseJobRequest(agent_id=reg.agent_id, session=reg.session, device=DEVICE, capabilities=CAPS)
        while True:
            job = stub.LeaseJob(ask, timeout=30)
            if not job.HasField("job"):
                return
            report = pb.ReportResultRequest(
                agent_id=reg.agent_id, session=reg.session, job_id=job.job.job_id, lease_id=job.job.lease_id,
                latency_ms=1.5, raw_ms=[1.5] * 10, runtime="tf", precision="fp32",
            )  # fmt: skip
            answer = stub.ReportResult(report, timeout=30)
            out[pb.ReportOutcome.Name(answer.outcome)] += 1
    except Exception as exc:  # reported by the test
        errors.append(repr(exc))
    finally:
        channel.close()


def _banner(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "API key" in line:
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout_s):
        raise AssertionError(f"eagle serve printed no banner (exit {proc.poll()}): {''.join(lines)}")
    return "".join(lines)


def test_two_grpc_workers_finish_a_campaign_and_die_with_a_killed_server(db_url: str, tmp_path: Path) -> None:
    token, campaign_id = _prepare(db_url)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("EAGLE_DB_URL", "EAGLE_API_KEY", "EAGLE_SETTINGS_FILE", "EAGLE_GRPC_WORKERS"):
        env.pop(name, None)
    argv = [
        *EAGLE, "serve", "--db", db_url, "--no-import", "--grpc-workers", "2", "--port", "0",
        "--grpc", "127.0.0.1:0", "--api-key", "eak_test-workers-0123456789", "--workdir", str(tmp_path / "var"),
    ]  # fmt: skip
    serve = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    workers: list[int] = []
    try:
        banner = _banner(serve, timeout_s=180)
        port = int(re.search(r"gRPC\s+\S+:(\d+)\s", banner).group(1))  # type: ignore[union-attr]
        found = re.search(r"gRPC workers 2 processes, pids ([\d, ]+)", banner)
        assert found, banner
        workers = [int(p) for p in found.group(1).split(",")]
        assert len(set(workers)) == 2 and all(_alive(p) for p in workers)

        outcomes: Counter[str] = Counter()
        errors: list[str] = []
        threads = [threading.Thread(target=_agent, args=(port, token, outcomes, errors)) for _ in range(AGENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert outcomes == {"REPORT_OUTCOME_ACCEPTED": JOBS}

        engine = make_engine(db_url)
        try:
            with session_factory(engine)() as s:
                states = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
                rows = s.scalar(select(func.count()).select_from(Measurement))
                per_job = s.scalar(select(func.count(func.distinct(Measurement.job_id))))
                state = s.scalar(select(Campaign.state).where(Campaign.id == campaign_id))
        finally:
            engine.dispose()
        assert states == {"done": JOBS}
        assert rows == per_job == JOBS  # exactly one measurement per job
        assert state == "done"

        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(10)
        deadline = time.monotonic() + 5.0
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers), "a gRPC worker outlived its SIGKILLed server"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)
        for pid in workers:  # each in its own session: only these pids, nothing else
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_supervisor_reserves_the_port_and_restarts_a_dead_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'eagle.db'}"
    upgrade(url)
    settings = AgentServiceSettings(lease_s=10.0, heartbeat_s=1.0, requeue_every_s=0)
    pool = GrpcWorkers(url, "127.0.0.1:0", settings, count=2)
    pool.start()
    try:
        assert pool.port > 0 and len(pool.pids) == 2
        # The port is taken for anyone not sharing it on purpose.
        with pytest.raises(OSError, match="cannot listen"):
            reserve_port("127.0.0.1", pool.port).close()
        with socket.create_connection(("127.0.0.1", pool.port), timeout=5):
            pass  # and workers accept on it
        first = pool.pids[0]
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while pool.restarts == 0 and time.monotonic() < deadline:
            pool.check()
            time.sleep(0.2)
        assert pool.restarts == 1 and first not in pool.pids and len(pool.pids) == 2
        assert all(_alive(p) for p in pool.pids)
    finally:
        pids = pool.pids
        pool.stop(grace_s=0.5)
    assert not any(_alive(p) for p in pids)


def test_default_worker_count() -> None:
    assert default_workers("sqlite:///x.db") == 1
    assert 1 <= default_workers("postgresql+psycopg://u@h/db") <= 4
