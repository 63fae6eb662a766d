"""Real processes for the reliability tests: ``eagle serve`` and ``eagle-agent``, on loopback only.

:class:`Serve` starts ``eagle serve`` on a given database with free ports, reads its banner for the REST
URL and the gRPC address, and can stop it politely (SIGTERM) or kill it (SIGKILL), then start it again
on the same ports so agents find it where it was. :class:`AgentProc` starts one ``eagle-agent`` with the
``debug`` backend (fake timings after a short sleep) and a TOML config with short timeouts, and can
kill it with SIGKILL. Every process is started in its own session so that cleanup can kill exactly
the process group it started (the agent's worker child included) and nothing else.

The store itself is read with SQLAlchemy to check the final counts (:func:`job_rows`, :func:`measurement_rows`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from latbench.store.db import make_engine, session_factory
from latbench.store.models import Campaign, Job, Measurement

REPO = Path(__file__).resolve().parents[2]
EAGLE = [sys.executable, "-c", "import sys; from latbench.cli import main; sys.exit(main())"]
API_KEY = "eak_e2e-test-key-0123456789"
DEVICE = "desktop_cpu_e2e_box_fp32"


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group ``proc`` leads (we started it with ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


class Serve:
    """``eagle serve`` on ``db_url``; see the module docstring."""

    def __init__(self, db_url: str, workdir: Path, lease_s: float = 4.0, heartbeat_s: float = 0.5) -> None:
        self.db_url = db_url
        self.workdir = workdir
        self.lease_s, self.heartbeat_s = lease_s, heartbeat_s
        self.http_port = 0
        self.grpc_port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0
        self._log: Any = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 120.0) -> Serve:
        """Start (first time: free ports; later: the same ports again) and wait for the banner."""
        env = dict(
            os.environ,
            EAGLE_LEASE_S=str(self.lease_s),
            EAGLE_HEARTBEAT_S=str(self.heartbeat_s),
            PYTHONUNBUFFERED="1",
        )
        for name in ("EAGLE_DB_URL", "EAGLE_API_KEY", "EAGLE_SETTINGS_FILE"):
            env.pop(name, None)
        argv = [
            *EAGLE,
            "serve",
            "--db",
            self.db_url,
            "--no-import",
            "--api-key",
            API_KEY,
            "--workdir",
            str(self.workdir),
            "--port",
            str(self.http_port),
            "--grpc",
            f"127.0.0.1:{self.grpc_port}",
            "--log-level",
            "warning",
        ]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self._log = (self.workdir / f"serve-{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        banner = self._read_banner(timeout_s)
        rest = re.search(r"REST\s+http://[^\s:]+:(\d+)/v1", banner)
        grpc_ = re.search(r"gRPC\s+[^\s]+:(\d+)\s", banner)
        assert rest and grpc_, f"unexpected banner: {banner}"
        self.http_port, self.grpc_port = int(rest.group(1)), int(grpc_.group(1))
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        return self

    def _read_banner(self, timeout_s: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        lines: list[str] = []
        result: list[str] = []

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line)
                if "API key" in line:
                    result.append("".join(lines))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not result:
            self.kill()
            raise AssertionError(f"eagle serve printed no banner in {timeout_s:.0f} s: {''.join(lines)}\n{self.log()}")
        return result[0]

    @staticmethod
    def _drain(proc: subprocess.Popen[str]) -> None:
        if proc.stdout is not None:
            for _ in proc.stdout:
                pass

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("serve-*.log")))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM and wait; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
                raise AssertionError(f"eagle serve did not stop within {timeout_s:.0f} s of SIGTERM") from None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would."""
        if self.proc is not None:
            _kill_group(self.proc)
        if self._log is not None:
            self._log.close()

    # -- REST ------------------------------------------------------------------------------------------
    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.rest}{path}", json=body, headers={"X-API-Key": API_KEY}, timeout=30)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.rest}{path}", params=params, timeout=30)

    def token(self) -> str:
        reply = self.post("/agents/tokens", {"note": "e2e"})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["token"])

    def submit(self, indices: list[int], **extra: Any) -> dict[str, Any]:
        body = {
            "device": DEVICE,
            "models": {"indices": indices},
            "runtime": "tf",
            "protocol": {"runs": 10, "warmup": 0},
            "dedupe": False,
            **extra,
        }
        reply = self.post("/campaigns", body)
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    def progress(self, campaign_id: int) -> dict[str, Any] | None:
        """The campaign's progress, or None while the server is away."""
        try:
            reply = self.get(f"/campaigns/{campaign_id}")
        except httpx.TransportError:
            return None
        return dict(reply.json()) if reply.status_code == 200 else None


class AgentProc:
    """One ``eagle-agent`` process with the debug backend; restartable with the same workdir (outbox)."""

    def __init__(self, name: str, target: str, token: str, root: Path, sleep_s: float = 0.3) -> None:
        self.name = name
        self.target = target
        self.token = token
        self.workdir = root / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = root / f"{name}.toml"
        self.config.write_text(
            f'device = "{DEVICE}"\nbackend = "debug"\nlease_wait_s = 1.0\nbackoff_initial_s = 0.2\n'
            f'backoff_max_s = 1.0\nflush_timeout_s = 5.0\nrpc_timeout_s = 5.0\nlog_level = "info"\n'
            f"[backend_options]\nsleep_s = {sleep_s}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.old_groups: list[subprocess.Popen[bytes]] = []  # killed agents whose worker may linger
        self.starts = 0

    def start(self) -> AgentProc:
        env = dict(os.environ, EAGLE_AGENT_TOKEN=self.token, PYTHONUNBUFFERED="1")
        argv = [
            sys.executable,
            "-m",
            "eagle_agent.main",
            "--server",
            self.target,
            "--config",
            str(self.config),
            "--workdir",
            str(self.workdir),
        ]
        self.starts += 1
        log = (self.workdir.parent / f"{self.name}.log").open("ab")
        log.write(f"--- start {self.starts}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the agent process only, as ``kill -9`` would: its worker child notices the orphaning
        and exits by itself within a second (the workdir lock dies with the agent)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.old_groups.append(self.proc)

    def cleanup(self) -> None:
        for proc in [*self.old_groups, self.proc]:
            if proc is not None:
                _kill_group(proc)

    def log(self) -> str:
        return (self.workdir.parent / f"{self.name}.log").read_text(errors="replace")


# -- the store -----------------------------------------------------------------------------------------------
def read_store(db_url: str, campaign_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """``(jobs, measurements, campaign state)`` of one campaign, as plain dicts."""
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as s:
            jobs = [
                {
                    "id": j.id,
                    "arch": j.arch_index,
                    "state": j.state,
                    "attempts": j.attempts,
                    "lease_id": j.lease_id,
                    "error_class": j.error_class,
                }
                for j in s.scalars(select(Job).where(Job.campaign_id == campaign_id).order_by(Job.id))
            ]
            rows = [
                {"job_id": m.job_id, "arch": m.arch_index, "lease_id": m.lease_id, "agent_id": m.agent_id}
                for m in s.scalars(select(Measurement).where(Measurement.campaign_id == campaign_id))
            ]
            state = s.scalar(select(Campaign.state).where(Campaign.id == campaign_id))
    finally:
        engine.dispose()
    return jobs, rows, str(state)


def assert_measured_exactly_once(db_url: str, campaign_id: int, indices: list[int]) -> list[dict[str, Any]]:
    """Every job done, one measurement row per job (the one of the lease that finished it), no other row."""
    jobs, rows, state = read_store(db_url, campaign_id)
    assert state == "done", state
    assert sorted(j["arch"] for j in jobs) == sorted(indices)
    not_done = [j for j in jobs if j["state"] != "done"]
    assert not not_done, f"jobs not done: {not_done}"
    assert len(rows) == len(jobs), f"{len(rows)} measurement rows for {len(jobs)} jobs"
    by_job = {r["job_id"]: r for r in rows}
    assert len(by_job) == len(rows), "two measurement rows for one job"
    assert sorted(r["arch"] for r in rows) == sorted(indices), "an architecture measured twice or not at all"
    for job in jobs:
        assert by_job[job["id"]]["lease_id"] == job["lease_id"], f"job {job['id']} recorded from another lease"
    return jobs
