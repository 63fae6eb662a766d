"""Group commit for the agent service on PostgreSQL: the leases and reports that arrive together run as
one statement each.

With many agents, most of a job's cost was per statement: a round trip, PostgreSQL's executor start-up,
SQLAlchemy's execution machinery and a commit, paid once for every lease and every report
(benchmarks/queue_throughput.py). Here one thread per kind (lease, report) takes every request that
arrived while its previous batch ran and runs them all in one autocommit statement
(:func:`latbench.store.queue_pg.lease_many`, :func:`~latbench.store.queue_pg.report_many`). Nothing
waits on a timer: a lone request runs at once, as a batch of one.

A call returns only after its batch committed, so an agent told "recorded" has its measurement stored,
as on the single path. Whatever a batch cannot settle goes back to the caller as ``None`` / ``SINGLE``,
and the caller takes the ordinary single path of :mod:`latbench.store.queue`, which gives the full
answer: an unknown agent or wrong device, a device with expired leases to requeue first, a duplicate or
stale report, or the database error itself if a batch failed. So a bad request never fails its
neighbours, and the batched path never answers differently from the single one.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from latbench.store import queue, queue_pg
from latbench.store.models import utcnow

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

SINGLE: Any = object()  # "take the single path": the batch could not settle this request


class _Slot(Generic[Req, Res]):
    __slots__ = ("done", "request", "result")

    def __init__(self, request: Req) -> None:
        self.request = request
        self.result: Res | Any = SINGLE
        self.done = threading.Event()


class Combiner(Generic[Req, Res]):
    """Runs callers' requests in batches on one thread: each batch is everything that arrived while the
    previous one ran (at most ``max_batch``). ``run`` gets the requests and returns one result each, in
    order; if it raises, every request of that batch gets ``SINGLE``."""

    def __init__(self, name: str, run: Callable[[list[Req]], Sequence[Res | Any]], max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run = run
        self._max_batch = max_batch
        self._pending: list[_Slot[Req, Res]] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0  # counters, for tests and logs
        self.requests = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._loop, name=f"eagle-{name}", daemon=True)
        self._thread.start()

    def call(self, request: Req) -> Res | Any:
        """The request's result, or ``SINGLE`` (also after ``close``)."""
        slot: _Slot[Req, Res] = _Slot(request)
        with self._cond:
            if self._closed:
                return SINGLE
            self._pending.append(slot)
            self._cond.notify()
        slot.done.wait()
        return slot.result

    def close(self, timeout: float = 5.0) -> None:
        """Finish the requests already queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
            try:
                results = list(self._run([slot.request for slot in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            except Exception as exc:  # the callers retry alone and meet the error themselves
                self.failures += 1
                log.warning("group commit batch of %d failed, retrying one by one: %s", len(batch), exc)
                results = [SINGLE] * len(batch)
            self.batches += 1
            self.requests += len(batch)
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
                slot.done.set()


class GroupCommit:
    """Batched lease and report for the agent service (PostgreSQL only; see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 256) -> None:
        self.sessions = sessions
        self.leases: Combiner[tuple[Any, ...], Any] = Combiner("lease-batch", self._lease_batch, max_batch)
        self.reports: Combiner[dict[str, Any], Any] = Combiner("report-batch", self._report_batch, max_batch)

    def close(self) -> None:
        self.leases.close()
        self.reports.close()

    # -- lease ------------------------------------------------------------------------------------
    def lease(self, agent_id: str, device: str, caps: Sequence[str], lease_s: float) -> queue.LeasedJob | Any | None:
        """The job leased to this agent, None when there is none, or ``SINGLE``."""
        return self.leases.call((agent_id, device, tuple(sorted(set(caps))), float(lease_s)))

    def _lease_batch(self, requests: list[tuple[Any, ...]]) -> list[Any]:
        now = utcnow()
        results: list[Any] = [SINGLE] * len(requests)
        groups: dict[tuple[str, tuple[str, ...], float], list[int]] = {}
        for i, (_, device, caps, lease_s) in enumerate(requests):
            if caps:
                groups.setdefault((device, caps, lease_s), []).append(i)
        with self.sessions() as session:
            conn = queue_pg.autocommit(session)
            for (device, caps, lease_s), members in groups.items():
                expires = now + timedelta(seconds=lease_s)
                lease_ids = {i: str(uuid.uuid4()) for i in members}
                asked = [(requests[i][0], lease_ids[i]) for i in members]
                taken = queue_pg.lease_many(conn, device, list(caps), asked, now, expires)
                rows = {row.request_lease_id: row for row in taken}
                for i in members:
                    row = rows.get(lease_ids[i])
                    if row is not None and not row.expired:  # else: unknown agent, wrong device, requeue first
                        results[i] = queue.leased_from_row(row, lease_ids[i], expires, device)
            session.commit()
        return results

    # -- report -----------------------------------------------------------------------------------
    def report(
        self,
        job_id: int,
        lease_id: str,
        agent_id: str,
        latency_ms: float,
        stats: dict[str, Any] | None,
        raw_ms: Sequence[float] | None,
        versions: dict[str, Any] | None,
        runtime: str,
        precision: str,
    ) -> queue.ReportOutcome | Any:
        """``ReportOutcome.ACCEPTED`` once the measurement is stored, or ``SINGLE`` (including every
        refusal: the single path says whether it was a duplicate or a stale lease). Bad values raise
        ``ValueError`` here, as on the single path."""
        latency, stats_json, raw, versions_json = queue.report_payload(latency_ms, stats, raw_ms, versions)
        return self.reports.call(
            {
                "job_id": int(job_id),
                "lease_id": lease_id,
                "agent_id": agent_id,
                "latency_ms": latency,
                "stats": json.dumps(stats_json),
                "raw_ms": json.dumps(raw),
                "versions": json.dumps(versions_json),
                "runtime": runtime or "",
                "precision": precision or "",
            }
        )

    def _report_batch(self, reports: list[dict[str, Any]]) -> list[Any]:
        now = utcnow()
        results: list[Any] = [SINGLE] * len(reports)
        # One job twice in a batch (an agent's repeat racing its first try) would insert it twice: the
        # first goes in the batch, the repeats take the single path, which finds the job done.
        first: dict[int, int] = {}
        for i, report in enumerate(reports):
            first.setdefault(report["job_id"], i)
        batch = [reports[i] for i in first.values()]
        with self.sessions() as session:
            conn = queue_pg.autocommit(session)
            recorded = queue_pg.report_many(conn, batch, queue.PROVENANCE_EAGLE, now)
            for campaign_id in sorted(set(recorded.values())):
                queue_pg.complete_campaign(conn, campaign_id, now)
            session.commit()
        for job_id, i in first.items():
            if job_id in recorded:
                results[i] = queue.ReportOutcome.ACCEPTED
        return results
