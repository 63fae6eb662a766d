"""``eagle-agent``: join an Eagle server and measure the models it hands out on this device.

    eagle-agent --server HOST:PORT --token T [--device NAME] [--runtime tf|litert] [--precision fp32,int8]
                [--backend NAME] [--config FILE] [--once N] [--workdir DIR]

Exit codes: 0 done (SIGTERM, --once), 2 a setting or the backend check needs fixing, 3 the server
refused the token.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from eagle_agent import __version__
from eagle_agent.backends import (
    RUNTIME_DEFAULT_BACKEND,
    CheckResult,
    UnknownBackendError,
    backend_names,
    create_backend,
)
from eagle_agent.config import AgentConfig, ConfigError, build_config
from eagle_agent.detect import host_facts, hostname
from eagle_agent.orphan import die_with_parent_from_env

if TYPE_CHECKING:
    from eagle_agent.loop import AgentLoop

log = logging.getLogger("eagle_agent")
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eagle-agent", description="Measure NB201 models for an Eagle server.")
    p.add_argument("--version", action="version", version=f"eagle-agent {__version__}")
    p.add_argument("--server", help="the server's gRPC address, HOST:PORT")
    p.add_argument("--token", help="agent token from `eagle agents token create` (or EAGLE_AGENT_TOKEN)")
    p.add_argument("--device", help="device name, LatBench style (default: desktop_cpu_<cpu model>_<precision>)")
    p.add_argument(
        "--runtime", help=f"runtime to measure with (default tf; known: {', '.join(RUNTIME_DEFAULT_BACKEND)})"
    )
    p.add_argument("--precision", help="precision(s) to accept, comma-separated (default fp32)")
    p.add_argument("--backend", help=f"backend module (default: the runtime's; known: {', '.join(backend_names())})")
    p.add_argument("--config", help="TOML config file (command-line options win)")
    p.add_argument("--once", type=int, metavar="N", help="stop after N jobs")
    p.add_argument("--workdir", help="folder for the outbox and converted models (default ~/.local/state/eagle-agent)")
    p.add_argument("--job-timeout", dest="job_timeout_s", type=float, metavar="S", help="seconds per job (default 900)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--check", action="store_true", help="print the backend check as JSON and exit")
    return p


class WorkdirLock:
    """An exclusive lock on ``<workdir>/agent.lock``: two agents must not share an outbox."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / "agent.lock"
        self._file: IO[str] | None = None

    def __enter__(self) -> WorkdirLock:
        f = self.path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ConfigError(
                f"workdir {self.path.parent} is in use by agent pid {holder}; give another --workdir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def _config_from_args(args: argparse.Namespace) -> AgentConfig:
    cli = {k: v for k, v in vars(args).items() if k != "check"}
    return build_config(cli)


def main(argv: Sequence[str] | None = None) -> int:
    # Started by `eagle serve --local-agent`: never outlive the server, even one killed with SIGKILL
    # (the outbox on disk keeps any finished result for the next start).
    die_with_parent_from_env()
    args = build_parser().parse_args(argv)
    try:
        config = _config_from_args(args)
        backend = create_backend(config.backend_name, config.backend_options, config.precisions)
    except (ConfigError, UnknownBackendError, ValueError) as exc:
        print(f"eagle-agent: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    check = backend.check()
    if args.check:
        print(json.dumps({"backend": backend.name, "capabilities": backend.capabilities(), **check.to_dict()}))
        return 0 if check.ok else EXIT_CONFIG
    if not check.ok:
        for part, what in check.missing.items():
            print(f"eagle-agent: backend {backend.name}: {part}: {what}", file=sys.stderr)
        return EXIT_CONFIG
    return run_agent(config, backend_check=check)


def run_agent(config: AgentConfig, backend_check: CheckResult | None = None) -> int:
    """Run the agent until it stops; SIGTERM/SIGINT stop it when called from the main thread."""
    from eagle_agent.client import AgentClient
    from eagle_agent.loop import AgentLoop
    from eagle_agent.outbox import Outbox
    from eagle_agent.worker import ChildWorker

    backend = create_backend(config.backend_name, config.backend_options, config.precisions)
    check = backend_check or backend.check()
    try:
        lock = WorkdirLock(config.workdir)
        lock.__enter__()
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    try:
        client = AgentClient(
            config.server,
            config.token,
            config.device,
            backend.capabilities(),
            hostname=hostname(),
            backend=backend.name,
            check=check,
            host_facts={**host_facts(), "hardware": backend.hardware()},
            rpc_timeout_s=config.rpc_timeout_s,
        )
        worker = ChildWorker(
            config.backend_name,
            config.backend_options,
            config.precisions,
            config.workdir,
            startup_timeout_s=config.startup_timeout_s,
            max_jobs_per_child=config.max_jobs_per_child,
        )
        loop = AgentLoop(config, client, worker, Outbox(config.workdir))
        with _stop_on_signals(loop):
            return loop.run()
    finally:
        lock.__exit__()


@contextmanager
def _stop_on_signals(loop: AgentLoop) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be handled in the main thread; the caller stops the loop itself
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        again = loop.stop_event.is_set()
        what = "abandoning the current job" if again else "finishing the current job, then exiting"
        log.info("%s: %s", signal.Signals(signum).name, what)
        loop.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
