"""``eagle serve``: one process with the REST API (uvicorn), the agent service (gRPC) and, on request, a local
desktop-CPU agent and the predictor trainer.

Start-up, in order: migrate the store (``upgrade``), load the shipped LatBench 2020 release into an empty
store (setting ``import_latbench_on_start``), register the shipped latency predictors for the LatBench devices
that have none (so predictions work at once), settle the API key (configured, else the one kept in
``<workdir>/api_key``, else a new one written there so later CLI calls on this machine find it), start gRPC
(in this process, or ``grpc_workers`` processes sharing its port: grpc_workers.py), bind and start uvicorn (in
a thread, so this module owns the signals), load the ready predictors in a background thread (setting
``warm_predictors``), start the local agent and, with ``run_trainer``, an ``eagle trainer`` child process on
the same store and workdir. The local agent and the gRPC workers die with this process even when it is killed
with SIGKILL (eagle_agent/orphan.py).

Shutdown on SIGINT / SIGTERM, in order: the trainer (SIGTERM: it abandons a training in progress), the local
agent (SIGTERM: it finishes or hands back its job while gRPC is still up; killed after ``AGENT_STOP_S``),
gRPC, uvicorn. A second signal skips the waiting.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO

import uvicorn
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from eagle_agent.orphan import parent_env
from eagle_server.app import create_app, database_url
from eagle_server.client import api_key_path, read_api_key_file
from eagle_server.grpc_service import AgentServiceSettings, GrpcServer, serve_grpc
from eagle_server.grpc_workers import GrpcWorkers, default_workers
from eagle_server.oneshot import MeasureRequest, run_campaign
from eagle_server.settings import Settings
from latbench import __version__
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.devices import ensure_device
from latbench.store.models import Measurement
from latbench.store.releases import import_latbench_2020
from latbench.store.tokens import create_agent_token
from predictors.service import register_shipped

log = logging.getLogger(__name__)

LOCAL_DEVICE = "local"
AGENT_STOP_S = 30.0  # how long the local agent gets to finish or hand back its job
STARTUP_TIMEOUT_S = 30.0


class ServeError(RuntimeError):
    """The server cannot start (the message says why: port in use, bad database URL, ...)."""


# -- API key ------------------------------------------------------------------------------------------
def resolve_api_key(settings: Settings) -> tuple[str, str]:
    """``(key, where it came from)``: the configured key, else the workdir's, else a new one stored there."""
    if settings.api_key:
        return settings.api_key, "configured"
    stored = read_api_key_file(settings.workdir)
    if stored:
        return stored, f"from {api_key_path(settings.workdir)}"
    key = "eak_" + secrets.token_urlsafe(32)  # "eagle API key": easy to tell from agent tokens (eat_)
    path = api_key_path(settings.workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start: the key must not be readable by other users even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key, f"generated, stored in {path}"


# -- store ----------------------------------------------------------------------------------------------
def prepare_store(url: str, import_latbench: bool) -> tuple[Engine, sessionmaker[Session], dict[str, Any] | None]:
    """Migrate the store and, if it has no measurement yet and ``import_latbench``, load LatBench 2020."""
    try:
        engine = make_engine(url)
        upgrade(engine)
    except Exception as exc:  # bad URL, database down, ...: say which database
        raise ServeError(f"cannot open the database {_masked(url)}: {exc}") from exc
    factory = session_factory(engine)
    imported = None
    if import_latbench:
        with factory() as session:
            empty = not session.scalar(select(func.count()).select_from(Measurement))
            session.rollback()
            if empty:
                imported = import_latbench_2020(session)
    return engine, factory, imported


def register_shipped_predictors(factory: sessionmaker[Session]) -> list[str]:
    """Register the shipped latency predictors for the store's LatBench devices that have none."""
    try:
        with factory() as session:
            return register_shipped(session)
    except Exception as exc:  # predictions are a convenience at start: never refuse to serve over them
        log.error("cannot register the shipped predictors: %s", exc)
        return []


def start_trainer(url: str, workdir: Path, log_file: IO[bytes] | None) -> subprocess.Popen[bytes]:
    """``eagle trainer`` on the server's store and workdir, in its own process group (stopped by ``stop``)."""
    argv = [sys.executable, "-m", "latbench.cli", "trainer", "--db", url, "--workdir", str(workdir)]
    return subprocess.Popen(argv, stdout=log_file, stderr=log_file, start_new_session=True)


def _masked(url: str) -> str:
    from sqlalchemy import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


# -- the local agent ------------------------------------------------------------------------------------
def _connect_host(host: str) -> str:
    """Where a local client reaches a server bound to ``host`` (a wildcard address means loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def start_local_agent(
    factory: sessionmaker[Session], grpc_target: str, workdir: Path, runtime: str, log_file: IO[bytes] | None
) -> subprocess.Popen[bytes]:
    """Create the ``local`` device and a token, then start ``eagle-agent --device local`` for them.

    The token goes through the environment (``EAGLE_AGENT_TOKEN``), not argv, so ``ps`` does not show it.
    The child gets its own process group: a terminal's Ctrl-C reaches this server only, which then stops
    the agent in order.
    """
    from eagle_agent.detect import cpu_model, host_facts

    with factory() as session:
        ensure_device(
            session,
            LOCAL_DEVICE,
            hardware=cpu_model(),
            runtime=runtime,
            host=host_facts(),
            device_class="desktop_cpu",
            precision="fp32",
        )
        session.commit()
        token = create_agent_token(session, note="eagle serve --local-agent")
    # EAGLE_PARENT_PID: the agent exits with this server, even one killed with SIGKILL (eagle_agent.orphan).
    env = parent_env(dict(os.environ, EAGLE_AGENT_TOKEN=token))
    argv = [
        sys.executable,
        "-m",
        "eagle_agent.main",
        "--server",
        grpc_target,
        "--device",
        LOCAL_DEVICE,
        "--runtime",
        runtime,
        "--workdir",
        str(workdir / "agent-local"),
    ]
    return subprocess.Popen(argv, env=env, stdout=log_file, stderr=log_file, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("local agent did not stop within %.0f s: killing it", timeout_s)
            proc.kill()
            proc.wait(10)
    return proc.returncode


# -- the server -----------------------------------------------------------------------------------------
def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen for REST on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@dataclass
class EagleServer:
    """The running parts of ``eagle serve``; :meth:`start` brings them up, :meth:`stop` takes them down."""

    settings: Settings
    local_agent: bool = False
    agent_runtime: str = "litert"
    log_level: str = "warning"
    out: TextIO = field(default_factory=lambda: sys.stdout)

    api_key: str = ""
    api_key_source: str = ""
    rest_url: str = ""
    grpc_target: str = ""
    imported: dict[str, Any] | None = None
    engine: Engine | None = None
    factory: sessionmaker[Session] | None = None
    grpc: GrpcServer | None = None
    grpc_workers: GrpcWorkers | None = None
    agent: subprocess.Popen[bytes] | None = None
    trainer: subprocess.Popen[bytes] | None = None
    shipped_predictors: list[str] = field(default_factory=list)
    _uvicorn: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _agent_log: IO[bytes] | None = None
    _trainer_log: IO[bytes] | None = None
    _warm: threading.Thread | None = None

    def start(self) -> None:
        s = self.settings
        url = database_url(s)
        self.engine, factory, self.imported = prepare_store(url, s.import_latbench_on_start)
        self.factory = factory
        self.shipped_predictors = register_shipped_predictors(factory)
        self.api_key, self.api_key_source = resolve_api_key(s)
        settings = Settings(**{**s.model_dump(), "api_key": self.api_key})
        sock = bind_socket(s.http_host, s.http_port)
        service = AgentServiceSettings(lease_s=s.lease_s, heartbeat_s=s.heartbeat_s, group_commit=s.group_commit)
        workers = s.grpc_workers or default_workers(url)
        try:
            if workers == 1:
                self.grpc = serve_grpc(factory, s.grpc_address, service)
                grpc_port = self.grpc.port
            else:  # N processes on one port (grpc_workers.py); this process keeps REST
                self.grpc_workers = GrpcWorkers(url, s.grpc_address, service, workers)
                self.grpc_workers.start()
                grpc_port = self.grpc_workers.port
        except (OSError, ValueError) as exc:
            sock.close()
            raise ServeError(str(exc)) from exc
        grpc_host = s.grpc_address.rsplit(":", 1)[0]
        self.grpc_target = f"{_connect_host(grpc_host)}:{grpc_port}"
        http_port = sock.getsockname()[1]
        self.rest_url = f"http://{_connect_host(s.http_host)}:{http_port}"

        app = create_app(settings, factory)
        config = uvicorn.Config(app, log_level=self.log_level, access_log=self.log_level in ("debug", "info"))
        self._uvicorn = uvicorn.Server(config)
        # In a thread other than the main one, uvicorn installs no signal handlers: run() owns them.
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="eagle-rest", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServeError(f"the REST server did not start on {self.rest_url}")
            time.sleep(0.05)
        if s.warm_predictors:  # first predictions then need no loading (seconds per device otherwise)
            self._warm = threading.Thread(target=app.state.predictions.warm, name="eagle-warm", daemon=True)
            self._warm.start()
        if s.run_trainer:
            workdir = Path(s.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            self._trainer_log = (workdir / "trainer.log").open("ab")
            self.trainer = start_trainer(url, workdir, self._trainer_log)

        if self.local_agent:
            workdir = Path(s.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            self._agent_log = (workdir / "agent-local.log").open("ab")
            self.agent = start_local_agent(factory, self.grpc_target, workdir, self.agent_runtime, self._agent_log)

    def banner(self) -> str:
        lines = [
            f"Eagle {__version__} serving",
            f"  REST   {self.rest_url}/v1   (docs: {self.rest_url}/docs)",
            f"  gRPC   {self.grpc_target}   (agents: eagle-agent --server {self.grpc_target} --token ...)",
        ]
        if self.grpc_workers is not None:
            pids = ", ".join(map(str, self.grpc_workers.pids))
            lines.append(f"  gRPC workers {len(self.grpc_workers.pids)} processes, pids {pids}")
        lines += [
            f"  store  {_masked(database_url(self.settings))}",
            f"  API key {self.api_key}   ({self.api_key_source})",
        ]
        if self.imported:
            lines.append(
                f"  imported LatBench 2020: {self.imported['inserted']} measurements, "
                f"{self.imported['devices']} devices"
            )
        if self.shipped_predictors:
            lines.append(f"  predictors: shipped ones registered for {len(self.shipped_predictors)} LatBench devices")
        if self.trainer is not None:
            lines.append(f"  trainer pid {self.trainer.pid} (log: {Path(self.settings.workdir) / 'trainer.log'})")
        if self.agent is not None:
            lines.append(
                f"  local agent pid {self.agent.pid}, device {LOCAL_DEVICE!r}, runtime {self.agent_runtime} "
                f"(log: {Path(self.settings.workdir) / 'agent-local.log'})"
            )
        return "\n".join(lines)

    def check_children(self) -> None:
        if self.grpc_workers is not None:
            for note in self.grpc_workers.check():
                print(f"eagle serve: {note}", file=sys.stderr)
        if self.agent is not None and self.agent.poll() is not None:
            log.error("the local agent exited with code %s (see its log); serving without it", self.agent.returncode)
            print(f"eagle serve: the local agent exited with code {self.agent.returncode}", file=sys.stderr)
            self.agent = None
        if self.trainer is not None and self.trainer.poll() is not None:
            log.error("the trainer exited with code %s (see its log)", self.trainer.returncode)
            print(f"eagle serve: the trainer exited with code {self.trainer.returncode}", file=sys.stderr)
            self.trainer = None

    @property
    def rest_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, hurry: bool = False) -> None:
        if self.trainer is not None:
            stop_process(self.trainer, 2.0 if hurry else AGENT_STOP_S)
            self.trainer = None
        if self._trainer_log is not None:
            self._trainer_log.close()
            self._trainer_log = None
        if self.agent is not None:
            stop_process(self.agent, 2.0 if hurry else AGENT_STOP_S)
            self.agent = None
        if self._agent_log is not None:
            self._agent_log.close()
            self._agent_log = None
        if self.grpc is not None:
            self.grpc.stop(grace=0.5 if hurry else 3.0).wait(10)
            self.grpc = None
        if self.grpc_workers is not None:
            self.grpc_workers.stop(grace_s=0.5 if hurry else 3.0)
            self.grpc_workers = None
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._thread is not None:
                self._thread.join(10)
            self._uvicorn = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def run(
    settings: Settings,
    *,
    local_agent: bool = False,
    agent_runtime: str = "litert",
    log_level: str = "warning",
    measure: MeasureRequest | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code.

    With ``measure``, serve only until that campaign on the local agent is finished (see oneshot.py).
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signals = {"count": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals["count"] += 1
        stop.set()
        if signals["count"] > 1 and server.agent is not None:  # asked twice: do not wait for the agent
            server.agent.kill()

    server = EagleServer(settings, local_agent=local_agent, agent_runtime=agent_runtime, log_level=log_level)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(server.banner(), flush=True)
        if measure is not None:
            assert server.factory is not None
            return run_campaign(server.factory, LOCAL_DEVICE, measure, agent_runtime, stop, sys.stdout)
        while not stop.wait(0.5):
            server.check_children()
            if not server.rest_alive:
                print("eagle serve: the REST server stopped unexpectedly", file=sys.stderr)
                break
        print("eagle serve: shutting down", file=sys.stderr, flush=True)
    finally:
        server.stop(hurry=signals["count"] > 1)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
