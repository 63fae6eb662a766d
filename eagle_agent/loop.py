"""The agent's main loop: register -> (deliver outbox) -> lease -> measure in the worker -> outbox -> repeat.

Delivery is at-least-once from the agent and exactly-once in the store: every finished job is written
to the outbox before it is sent, and leaves it only on ACCEPTED / DUPLICATE / STALE_LEASE. While the
server is away the loop backs off exponentially (with jitter) and keeps the outbox; it never leases
a new job while old reports are undelivered, so results cannot pile up.

Stopping: :meth:`AgentLoop.request_stop` (SIGTERM / SIGINT) lets the current job finish and be reported,
then flushes the outbox for up to ``flush_timeout_s`` and returns 0. A second request abandons the
current job at once (its lease lapses and the server requeues it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eagle_agent.backends import ErrorClass, JobSpec
from eagle_agent.client import AgentClient, AuthRefused, Registration, ReportRejected, ServerAway
from eagle_agent.config import AgentConfig
from eagle_agent.outbox import Outbox
from eagle_agent.worker import ChildWorker, JobOutcome

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_AUTH = 3  # the server refused the token: a person has to act
EXIT_WORKER = 4  # the backend cannot start in the worker process
MAX_WORKER_FAILURES = 3  # consecutive worker start failures before giving up


class Backoff:
    """Exponential backoff with full jitter, waited on an Event so a stop request cuts it short."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2**self.failures)
        self.failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def sleep(self, stop: threading.Event) -> float:
        delay = self.next_delay()
        stop.wait(delay)
        return delay


@dataclass
class LoopStats:
    jobs: int = 0  # jobs leased and run (finished, failed or abandoned)
    results: int = 0  # results delivered (accepted or duplicate)
    failures: int = 0  # failure reports delivered
    stale: int = 0  # reports refused as stale
    abandoned: int = 0
    reconnects: int = 0  # times the server was found away


class AgentLoop:
    def __init__(
        self,
        config: AgentConfig,
        client: AgentClient,
        worker: ChildWorker,
        outbox: Outbox,
        *,
        on_event: Callable[[str, dict[str, object]], None] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.worker = worker
        self.outbox = outbox
        self.stop_event = threading.Event()
        self.abort_event = threading.Event()
        self.stats = LoopStats()
        self.registration: Registration | None = None
        self._on_event = on_event
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self._worker_failures = 0

    # -- control ----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """First call: finish the current job, then stop. Second call: abandon it."""
        if self.stop_event.is_set():
            self.abort_event.set()
        self.stop_event.set()

    def _event(self, name: str, **data: object) -> None:
        if self._on_event is not None:
            self._on_event(name, data)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        self.worker.start()  # import the framework while we register and wait for work
        try:
            return self._run()
        finally:
            self.worker.stop()
            self.client.close()

    def _run(self) -> int:
        cfg = self.config
        while not self.stop_event.is_set():
            try:
                if self.registration is None:
                    self.registration = self.client.register()
                    log.info(
                        "registered with %s as agent %s (device %s, %s)",
                        cfg.server,
                        self.registration.agent_id,
                        cfg.device,
                        ", ".join(self.client.capabilities),
                    )
                    self._event("registered", agent_id=self.registration.agent_id)
                self._deliver()
                if cfg.once is not None and self.stats.jobs >= cfg.once:
                    break
                if not self._worker_ready():
                    if self._worker_failures >= MAX_WORKER_FAILURES:
                        self._flush(cfg.flush_timeout_s)
                        return EXIT_WORKER
                    self._backoff.sleep(self.stop_event)
                    continue
                job = self.client.lease(cfg.lease_wait_s, cancel=self.stop_event)
                self._backoff.reset()
            except AuthRefused as exc:
                log.error("the server at %s refused this agent: %s", cfg.server, exc)
                return EXIT_AUTH
            except ServerAway as exc:
                self.stats.reconnects += 1
                delay = self._backoff.sleep(self.stop_event)
                log.warning("server %s away (%s); retried after %.1f s", cfg.server, exc, delay)
                continue
            if job is not None:
                self._run_job(job)
        self._flush(cfg.flush_timeout_s)
        return EXIT_OK

    def _worker_ready(self) -> bool:
        """Wait for the worker's backend before leasing (a broken backend must not burn attempts)."""
        if self.worker.ready:
            return True
        problem = self.worker.wait_ready(tick=lambda: not self.stop_event.is_set())
        if not problem:
            self._worker_failures = 0
            return True
        if problem != "abandon":
            self._worker_failures += 1
            log.error("worker start %d/%d failed: %s", self._worker_failures, MAX_WORKER_FAILURES, problem)
        return False

    def _run_job(self, job: JobSpec) -> None:
        self.stats.jobs += 1
        log.info("job %s: arch %s %s (attempt %s)", job.job_id, job.arch_index, job.capability, job.attempt)
        self._event("job_started", job_id=job.job_id, pid=self.worker.pid)
        if job.capability not in self.client.capabilities:
            outcome = JobOutcome(
                job,
                error_class=ErrorClass.UNSUPPORTED,
                message=f"agent runs {', '.join(self.client.capabilities)}; job asks for {job.capability}",
            )
        else:
            heartbeat_s = self.registration.heartbeat_s if self.registration else 10.0
            outcome = self.worker.run(
                job, self.config.job_timeout_s, tick=lambda: self._heartbeat(job), tick_every_s=heartbeat_s
            )
        if outcome.abandoned:
            self.stats.abandoned += 1
            log.warning("job %s abandoned: %s", job.job_id, outcome.message)
            self._event("job_abandoned", job_id=job.job_id)
            return
        if outcome.ok:
            assert outcome.result is not None
            log.info("job %s: %.3f ms in %.1f s", job.job_id, outcome.result["latency_ms"], outcome.elapsed_s)
        else:
            log.warning("job %s failed (%s): %s", job.job_id, outcome.error_class, outcome.message)
        self.outbox.add(outcome.to_report())
        self._event("job_finished", job_id=job.job_id, ok=outcome.ok)

    def _heartbeat(self, job: JobSpec) -> bool:
        """Extend the job's lease; False (abandon the job) if the lease is lost or we must abort."""
        if self.abort_event.is_set():
            return False
        try:
            reply = self.client.heartbeat(job)
        except (ServerAway, AuthRefused) as exc:
            log.warning("heartbeat for job %s not delivered (%s); carrying on", job.job_id, exc)
            return True
        if reply.lease_lost:
            log.warning("job %s: the server says the lease is lost", job.job_id)
        return not reply.lease_lost

    def _deliver(self) -> None:
        """Send every pending report; raises ServerAway if the server goes away meanwhile."""
        for entry_id, report in self.outbox.pending():
            try:
                outcome = self.client.report(report)
            except ReportRejected as exc:
                log.error("report %s dropped: the server refused it as malformed: %s", entry_id, exc)
                self.outbox.done(entry_id)
                continue
            self.outbox.done(entry_id)
            if outcome == "stale_lease":
                self.stats.stale += 1
                log.warning("report %s refused: the lease had expired (the job was requeued)", entry_id)
            elif report["kind"] == "result":
                self.stats.results += 1
            else:
                self.stats.failures += 1
            self._event("delivered", id=entry_id, outcome=outcome, kind=report["kind"])

    def _flush(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        backoff = Backoff(self.config.backoff_initial_s, min(self.config.backoff_max_s, 5.0))
        while len(self.outbox) and time.monotonic() < deadline and not self.abort_event.is_set():
            try:
                self._deliver()
            except (ServerAway, AuthRefused) as exc:
                log.warning("outbox flush: %s", exc)
                self.abort_event.wait(min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))
        if len(self.outbox):
            log.warning(
                "%d report(s) left in %s; they are delivered on the next start", len(self.outbox), self.outbox.path
            )
