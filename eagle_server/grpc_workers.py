"""``eagle serve --grpc-workers N``: the agent service in N processes sharing one port.

One Python process serves about 450 jobs/s at most (its CPU per lease + report, GIL-bound; see
benchmarks/queue_throughput.py). With N > 1 the server starts N worker processes
(``python -m eagle_server.grpc_workers``), each a full :func:`~eagle_server.grpc_service.serve_grpc` with
its own database engine, all bound to the same port with ``SO_REUSEPORT`` so that the kernel spreads
agent connections over them. The store's queue is safe across processes (row locks on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), and sessions are HMACs of the token hash, so any worker accepts any
agent. Only worker 0 runs the expired-lease sweep.

The parent (:class:`GrpcWorkers`) keeps a socket bound to the port (not listening: it takes no
connections) so that the port stays this server's while a worker restarts; it restarts a worker that
died, and stops them all with SIGTERM (SIGKILL after a grace period). Workers die with the parent even
when it is SIGKILLed (:mod:`eagle_agent.orphan`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from eagle_agent.orphan import die_with_parent_from_env, parent_env
from eagle_server.grpc_service import AgentServiceSettings

log = logging.getLogger(__name__)

READY = "ready"
START_TIMEOUT_S = 60.0
RESTART_BACKOFF_S = 1.0  # a worker that keeps dying is restarted at most this often


def default_workers(db_url: str) -> int:
    """1 on SQLite (its writers take turns anyway); on PostgreSQL one per CPU core, at most 4."""
    if db_url.startswith("sqlite"):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT, not listening (port 0: a free port).

    A plain bind first: SO_REUSEPORT alone would let us share a port another server (of this user)
    is listening on, which must be an error.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen for agents on {host}:{port}: {exc.strerror or exc}") from exc
        port = probe.getsockname()[1]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen for agents on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


@dataclass
class GrpcWorkers:
    """N agent-service processes on one port; see the module docstring."""

    db_url: str
    address: str  # HOST:PORT (port 0: any free port)
    settings: AgentServiceSettings
    count: int
    log_file: IO[bytes] | None = None
    port: int = 0
    procs: list[subprocess.Popen[str] | None] = field(default_factory=list)
    restarts: int = 0
    _reserved: socket.socket | None = None
    _last_start: list[float] = field(default_factory=list)

    def start(self) -> None:
        if self.count < 1:
            raise ValueError(f"grpc workers must be >= 1, got {self.count}")
        host, _, port = self.address.rpartition(":")
        self._reserved = reserve_port(host, int(port))
        self.port = self._reserved.getsockname()[1]
        self.procs = [None] * self.count
        self._last_start = [0.0] * self.count
        try:
            started = [self._spawn(i) for i in range(self.count)]
            deadline = time.monotonic() + START_TIMEOUT_S
            for i, proc in enumerate(started):
                self._wait_ready(i, proc, deadline)
        except BaseException:
            self.stop(grace_s=0.0)
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def _spawn(self, index: int) -> subprocess.Popen[str]:
        host = self.address.rpartition(":")[0]
        sweep_s = self.settings.requeue_every_s if index == 0 else 0.0  # one sweeper is enough
        settings = dataclasses.replace(self.settings, requeue_every_s=sweep_s)
        argv = [
            sys.executable, "-m", "eagle_server.grpc_workers",
            "--address", f"{host}:{self.port}",
            "--index", str(index),
            "--settings", json.dumps(dataclasses.asdict(settings)),
        ]  # fmt: skip
        # The URL (it may hold a password) goes through the environment, not argv (ps shows argv).
        env = parent_env(dict(os.environ, EAGLE_WORKER_DB_URL=self.db_url))
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=self.log_file, text=True, start_new_session=True
        )
        self.procs[index] = proc
        self._last_start[index] = time.monotonic()
        return proc

    def _wait_ready(self, index: int, proc: subprocess.Popen[str], deadline: float) -> None:
        assert proc.stdout is not None
        line = ""
        while time.monotonic() < deadline and proc.poll() is None:
            readable, _, _ = select.select([proc.stdout], [], [], 0.2)
            if readable:
                line = proc.stdout.readline().strip()
                break
        proc.stdout.close()  # workers write nothing else there
        if line != READY:
            raise OSError(f"gRPC worker {index} did not start (exit code {proc.poll()}); see the server's log")

    def check(self) -> list[str]:
        """Restart workers that died; a line per restart (for the server's stderr)."""
        notes = []
        for i, proc in enumerate(self.procs):
            if proc is None or proc.poll() is None:
                continue
            if time.monotonic() - self._last_start[i] < RESTART_BACKOFF_S:
                continue
            notes.append(f"gRPC worker {i} (pid {proc.pid}) exited with code {proc.returncode}: restarting it")
            log.error("%s", notes[-1])
            self.restarts += 1
            try:
                new = self._spawn(i)
                self._wait_ready(i, new, time.monotonic() + START_TIMEOUT_S)
            except OSError as exc:
                notes.append(str(exc))
        return notes

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM every worker (each stops its gRPC server with ``grace_s``), SIGKILL the late ones."""
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in live:
            proc.terminate()
        deadline = time.monotonic() + grace_s + 5.0
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("gRPC worker pid %d did not stop: killing it", proc.pid)
                proc.kill()
                proc.wait(10)
        self.procs = []
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None


# -- the worker process ------------------------------------------------------------------------------
def worker_main(argv: list[str] | None = None) -> int:
    die_with_parent_from_env()
    p = argparse.ArgumentParser(prog="python -m eagle_server.grpc_workers")
    p.add_argument("--address", required=True)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--settings", required=True, help="AgentServiceSettings as JSON")
    p.add_argument("--grace", type=float, default=3.0)
    p.add_argument("--log-level", default=os.environ.get("EAGLE_LOG_LEVEL", "warning"))
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format=f"%(asctime)s %(levelname)s grpc-worker-{args.index} %(name)s: %(message)s"
    )
    from eagle_server.grpc_service import serve_grpc
    from latbench.store.db import make_engine, session_factory

    url = os.environ.pop("EAGLE_WORKER_DB_URL", "")
    if not url:
        print("EAGLE_WORKER_DB_URL is not set", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # The store's default pool (as many as the gRPC threads): it grows only to the calls in flight at
    # once, so N workers together hold about as many connections as one process would, and a smaller
    # pool would close and reopen connections under load (milliseconds each on PostgreSQL).
    engine = make_engine(url)
    try:
        server = serve_grpc(
            session_factory(engine), args.address, AgentServiceSettings(**json.loads(args.settings)), reuse_port=True
        )
    except OSError as exc:
        print(f"gRPC worker {args.index}: {exc}", file=sys.stderr)
        engine.dispose()
        return 1
    print(READY, flush=True)
    with open(os.devnull, "w") as devnull:  # the parent closed its end of our stdout
        sys.stdout = devnull
        while not stop.wait(0.5):
            pass
        server.stop(args.grace).wait(args.grace + 5)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
