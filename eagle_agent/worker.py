"""Measuring jobs in a child process, so a crash, hang or leak in a framework cannot take the agent down.

The agent keeps one worker process (``multiprocessing`` spawn: no state forked from the agent) that
creates the backend once, imports its framework up front (``Backend.load``), and then measures jobs
sent over a pipe. The parent waits for each answer with a deadline and calls a ``tick`` function at a
steady interval meanwhile (the agent's heartbeats):

* the child answers ``ok`` or a classified error -> that outcome;
* the child dies (segfault, abort, OOM kill) -> a ``runtime`` failure naming the signal or exit code,
  and a fresh child for the next job;
* the deadline passes -> the child is killed and the job fails with ``timeout``;
* ``tick`` returns False (lease lost, or the agent is told to abort) -> the child is killed and the
  job is abandoned (nothing is reported; the lease lapses and the server requeues it).

The child is also recycled after ``max_jobs_per_child`` jobs, against slow leaks. It ignores SIGINT and
SIGTERM (the agent decides when it stops) and exits by itself if the agent process disappears.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from eagle_agent.backends import (
    Backend,
    BackendError,
    ErrorClass,
    JobSpec,
    Prepared,
    create_backend,
    describe_exception,
    stage,
)
from latbench.protocol import ProtocolResult, summarize

log = logging.getLogger(__name__)

Tick = Callable[[], bool]


@dataclass
class JobOutcome:
    """How one job ended. ``result`` on success; ``error_class`` + ``message`` on failure."""

    job: JobSpec
    result: dict[str, Any] | None = None
    error_class: ErrorClass | None = None
    message: str = ""
    abandoned: bool = False  # nothing to report (lease lost or the agent aborting)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is not None

    def to_report(self) -> dict[str, Any]:
        """The outbox / ReportResult / ReportFailure payload (plain JSON)."""
        base: dict[str, Any] = {"job_id": self.job.job_id, "lease_id": self.job.lease_id}
        if self.result is not None:
            return {
                **base,
                "kind": "result",
                "runtime": self.job.runtime,
                "precision": self.job.precision,
                **self.result,
            }
        if self.abandoned:
            raise ValueError(f"job {self.job.job_id} was abandoned: there is nothing to report")
        return {
            **base,
            "kind": "failure",
            "error_class": (self.error_class or ErrorClass.RUNTIME).value,
            "message": self.message,
        }


def measure_job(backend: Backend, job: JobSpec, workdir: Path) -> dict[str, Any]:
    """Prepare and time one job with ``backend`` (in whatever process calls it); raise BackendError."""
    prepared: Prepared | None = None
    try:
        with stage(ErrorClass.BUILD):
            prepared = backend.prepare(job, workdir)
        with stage(ErrorClass.RUNTIME):
            out = backend.run(prepared, job.params)
            result = out if isinstance(out, ProtocolResult) else summarize(out, group_size=job.group_size)
        if not (math.isfinite(result.latency_ms) and result.latency_ms > 0):
            raise BackendError(ErrorClass.RUNTIME, f"the protocol gave latency {result.latency_ms!r} ms")
        return {
            "latency_ms": result.latency_ms,
            "stats": result.to_dict(),
            "raw_ms": list(result.raw_ms),
            "versions": {k: str(v) for k, v in backend.versions().items()},
            "build_s": prepared.build_s,
            "convert_s": prepared.convert_s,
            "cached": prepared.cached,
        }
    finally:
        if prepared is not None:
            try:
                backend.cleanup(prepared)
            except Exception as exc:  # a failed cleanup must not hide the job's own outcome
                log.warning("backend %s: cleanup after job %s failed: %s", backend.name, job.job_id, exc)


# -- the child ----------------------------------------------------------------------------------------
def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)  # orphaned: the agent is gone, nobody will read our answer
        time.sleep(1.0)


def _child_main(
    conn: Connection,
    backend_name: str,
    options: Mapping[str, Any],
    precisions: Sequence[str],
    workdir: str,
    parent_pid: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    try:
        backend = create_backend(backend_name, options, precisions)
        backend.load()
    except Exception as exc:
        conn.send(("fatal", describe_exception(exc)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            conn.send(("ok", measure_job(backend, job, Path(workdir))))
        except BackendError as exc:
            conn.send(("error", exc.error_class.value, exc.message))
        except BaseException as exc:
            conn.send(("error", ErrorClass.RUNTIME.value, describe_exception(exc)))


# -- the parent ---------------------------------------------------------------------------------------
@dataclass
class _Child:
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    ready: bool = False
    jobs: int = 0
    last_message: tuple[Any, ...] = ()
    started_at: float = field(default_factory=time.monotonic)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "it is still running"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class ChildWorker:
    """One worker process for a backend, restarted whenever it dies, hangs or has done enough jobs."""

    def __init__(
        self,
        backend_name: str,
        options: Mapping[str, Any] | None,
        precisions: Sequence[str],
        workdir: Path,
        *,
        startup_timeout_s: float = 600.0,
        max_jobs_per_child: int = 200,
    ) -> None:
        self.backend_name = backend_name
        self.options = dict(options or {})
        self.precisions = tuple(precisions)
        self.workdir = Path(workdir)
        self.startup_timeout_s = startup_timeout_s
        self.max_jobs_per_child = max_jobs_per_child
        self._ctx = multiprocessing.get_context("spawn")
        self._child: _Child | None = None
        self.restarts = 0  # children started after the first (crashes, timeouts, recycling)
        self._started_any = False

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start a child if none is running (returns at once; readiness is awaited by :meth:`run`)."""
        if self._child is not None and self._child.process.is_alive():
            return
        self._discard()
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_child_main,
            args=(child_conn, self.backend_name, self.options, self.precisions, str(self.workdir), os.getpid()),
            name=f"eagle-worker-{self.backend_name}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        if self._started_any:
            self.restarts += 1
        self._started_any = True
        self._child = _Child(process, parent_conn)

    @property
    def pid(self) -> int | None:
        return self._child.process.pid if self._child else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the child to exit after its current job; kill it if it does not."""
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError, ValueError):
            child.conn.send(None)
        child.process.join(timeout_s)
        _kill(child)

    def kill(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            _kill(child)

    def _discard(self) -> None:
        if self._child is not None:
            _kill(self._child)
            self._child = None

    # -- running a job ----------------------------------------------------------------------------
    def run(self, job: JobSpec, timeout_s: float, tick: Tick | None = None, tick_every_s: float = 10.0) -> JobOutcome:
        """Measure ``job`` in the child (see the module docstring for how it can end)."""
        t0 = time.monotonic()
        outcome = self._run(job, timeout_s, tick, tick_every_s)
        outcome.elapsed_s = time.monotonic() - t0
        return outcome

    def wait_ready(self, timeout_s: float | None = None, tick: Tick | None = None, tick_every_s: float = 1.0) -> str:
        """Start the child if needed and wait until its backend is loaded.

        Returns "" when ready, else why not ("abandon" when ``tick`` said so). The agent calls this
        before leasing, so a backend that cannot start never burns a job's attempts.
        """
        self.start()
        child = self._child
        assert child is not None
        if child.ready:
            return ""
        timeout_s = self.startup_timeout_s if timeout_s is None else timeout_s
        answer = _Waiter(child, tick, tick_every_s).wait(timeout_s)
        if answer == "abandon":
            return "abandon"
        if answer == "timeout":
            self._discard()
            return f"the worker process did not start within {timeout_s:g} s"
        if answer == "died":
            self._discard()
            return f"the worker process died while starting ({_death_reason(child.process.exitcode)})"
        message = child.last_message
        if message[0] == "fatal":
            self._discard()
            return f"backend {self.backend_name} could not start: {message[1]}"
        child.ready = True
        return ""

    @property
    def ready(self) -> bool:
        return self._child is not None and self._child.ready and self._child.process.is_alive()

    def _run(self, job: JobSpec, timeout_s: float, tick: Tick | None, tick_every_s: float) -> JobOutcome:
        problem = self.wait_ready(tick=tick, tick_every_s=tick_every_s)
        if problem == "abandon":
            return JobOutcome(job, abandoned=True, message="abandoned while the worker was starting")
        if problem:
            return JobOutcome(job, error_class=ErrorClass.RUNTIME, message=problem)
        child = self._child
        assert child is not None
        waiter = _Waiter(child, tick, tick_every_s)
        try:
            child.conn.send(job)
        except (OSError, ValueError) as exc:
            self._discard()
            return JobOutcome(job, error_class=ErrorClass.RUNTIME, message=f"cannot reach the worker: {exc}")
        answer = waiter.wait(timeout_s)
        if answer == "abandon":
            self._discard()
            return JobOutcome(job, abandoned=True, message="abandoned: lease lost or the agent is aborting")
        if answer == "timeout":
            self._discard()
            return JobOutcome(
                job,
                error_class=ErrorClass.TIMEOUT,
                message=f"job {job.job_id} ran past the agent's limit of {timeout_s:g} s; the worker was killed",
            )
        if answer == "died":
            reason = _death_reason(child.process.exitcode)
            self._discard()
            return JobOutcome(
                job,
                error_class=ErrorClass.RUNTIME,
                message=f"the worker process died while measuring job {job.job_id} ({reason})",
            )
        child.jobs += 1
        if child.jobs >= self.max_jobs_per_child:
            self.stop()  # recycled; the next job starts a fresh child
        message = child.last_message
        if message[0] == "ok":
            return JobOutcome(job, result=message[1])
        return JobOutcome(job, error_class=ErrorClass(message[1]), message=message[2])


class _Waiter:
    """Wait for the child's next message (kept in ``child.last_message``) while ticking; ``wait`` says
    how the wait ended: "message", "died", "timeout" or "abandon"."""

    def __init__(self, child: _Child, tick: Tick | None, tick_every_s: float) -> None:
        self.child = child
        self.tick = tick
        self.tick_every_s = max(0.05, tick_every_s)
        self.next_tick = time.monotonic() + self.tick_every_s

    def wait(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        conn, sentinel = self.child.conn, self.child.process.sentinel
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            ready = wait([conn, sentinel], timeout=min(deadline, self.next_tick) - now)
            if conn in ready:
                try:
                    self.child.last_message = conn.recv()
                    return "message"
                except (EOFError, OSError):
                    self.child.process.join(5.0)
                    return "died"
            if sentinel in ready:
                self.child.process.join(5.0)  # the sentinel fires before the exit status is there
                return "died"
            if self.tick is not None and time.monotonic() >= self.next_tick:
                self.next_tick = time.monotonic() + self.tick_every_s
                if not self.tick():
                    return "abandon"


def _kill(child: _Child) -> None:
    with contextlib.suppress(OSError):
        child.conn.close()
    if child.process.is_alive():
        child.process.kill()  # SIGKILL: the child ignores SIGTERM
    child.process.join(10.0)
