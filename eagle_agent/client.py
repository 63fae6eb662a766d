"""The agent's side of the gRPC protocol (see ``protos/eagle/v1/agent.proto``).

:class:`AgentClient` turns RPCs into plain Python values and gRPC failures into two exceptions the loop
acts on: :class:`ServerAway` (transport trouble: retry with backoff) and :class:`AuthRefused` (the token
was refused: stop). A call refused because the session is no longer valid registers again with the
token and is retried once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from eagle_agent import __version__
from eagle_agent.backends import CheckResult, ErrorClass, JobSpec
from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
from eagle_agent.proto.eagle.v1 import agent_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

# Statuses that mean "the server or the network is not there right now".
_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}
OUTCOMES = {
    pb.REPORT_OUTCOME_ACCEPTED: "accepted",
    pb.REPORT_OUTCOME_DUPLICATE: "duplicate",
    pb.REPORT_OUTCOME_STALE_LEASE: "stale_lease",
}
ERROR_CLASS_TO_PB = {
    ErrorClass.BUILD: pb.ERROR_CLASS_BUILD,
    ErrorClass.CONVERT: pb.ERROR_CLASS_CONVERT,
    ErrorClass.COMPILE: pb.ERROR_CLASS_COMPILE,
    ErrorClass.UNSUPPORTED: pb.ERROR_CLASS_UNSUPPORTED,
    ErrorClass.RUNTIME: pb.ERROR_CLASS_RUNTIME,
    ErrorClass.TIMEOUT: pb.ERROR_CLASS_TIMEOUT,
}
# gRPC's own reconnect backoff defaults to 1 s growing to 120 s; a restarted server should be found fast.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


class ServerAway(Exception):
    """The server could not be reached or did not answer; try again later."""


class AuthRefused(Exception):
    """The server refused the agent's token (UNAUTHENTICATED at Register); retrying will not help."""


class ReportRejected(Exception):
    """The server refused a report as malformed (INVALID_ARGUMENT / NOT_FOUND): it can never land."""


@dataclass(frozen=True)
class Registration:
    agent_id: str
    session: str
    lease_s: float
    heartbeat_s: float
    max_wait_s: float
    server_version: str


@dataclass(frozen=True)
class HeartbeatReply:
    ok: bool
    lease_lost: bool


def job_from_pb(job: Any) -> JobSpec:
    return JobSpec(
        job_id=int(job.job_id),
        lease_id=job.lease_id,
        arch_index=int(job.arch_index),
        arch_str=job.arch_str,
        runtime=job.runtime,
        precision=job.precision,
        runs=int(job.protocol.runs),
        warmup=int(job.protocol.warmup),
        group_size=int(job.protocol.group_size),
        attempt=int(job.attempt),
        campaign_id=int(job.campaign_id),
        pause_s=float(job.protocol.pause_s),
        canonical_key=job.canonical_key,
    )


def report_to_pb(report: dict[str, Any], agent_id: str, session: str) -> Any:
    """An outbox report as a ReportResultRequest or ReportFailureRequest."""
    job_id, lease_id = int(report["job_id"]), str(report["lease_id"])
    if report["kind"] == "result":
        stats = struct_pb2.Struct()
        stats.update(report.get("stats") or {})
        return pb.ReportResultRequest(
            agent_id=agent_id,
            session=session,
            job_id=job_id,
            lease_id=lease_id,
            latency_ms=float(report["latency_ms"]),
            stats=stats,
            raw_ms=[float(v) for v in report.get("raw_ms") or []],
            versions={str(k): str(v) for k, v in (report.get("versions") or {}).items()},
            runtime=str(report.get("runtime", "")),
            precision=str(report.get("precision", "")),
            build_s=float(report.get("build_s") or 0.0),
            convert_s=float(report.get("convert_s") or 0.0),
        )
    if report["kind"] == "failure":
        return pb.ReportFailureRequest(
            agent_id=agent_id,
            session=session,
            job_id=job_id,
            lease_id=lease_id,
            error_class=ERROR_CLASS_TO_PB[ErrorClass(report["error_class"])],
            message=str(report.get("message", ""))[:4000],
        )
    raise ValueError(f"unknown report kind {report['kind']!r}")


class AgentClient:
    """One agent's connection to the server: register, lease, heartbeat, report."""

    def __init__(
        self,
        target: str,
        token: str,
        device: str,
        capabilities: Sequence[str],
        *,
        hostname: str = "",
        backend: str = "",
        check: CheckResult | None = None,
        host_facts: dict[str, str] | None = None,
        rpc_timeout_s: float = 15.0,
    ) -> None:
        self.target = target
        self.token = token
        self.device = device
        self.capabilities = list(capabilities)
        self.hostname = hostname
        self.backend = backend
        self.check = check or CheckResult({}, {})
        self.host_facts = dict(host_facts or {})
        self.rpc_timeout_s = rpc_timeout_s
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.AgentServiceStub(self.channel)
        self.registration: Registration | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    # -- calls --------------------------------------------------------------------------------------
    def register(self) -> Registration:
        request = pb.RegisterRequest(
            token=self.token,
            device=self.device,
            hostname=self.hostname,
            capabilities=self.capabilities,
            backend=self.backend,
            backend_check=pb.BackendCheck(ok=self.check.ok, found=self.check.found, missing=self.check.missing),
            agent_version=__version__,
            host_facts=self.host_facts,
        )
        try:
            reply = self.stub.Register(request, timeout=self.rpc_timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise AuthRefused(exc.details() or "the server refused the token") from None
            raise _away(exc) from None
        s = reply.settings
        registration = Registration(
            reply.agent_id, reply.session, s.lease_s, s.heartbeat_s, s.max_wait_s, s.server_version
        )
        with self._lock:
            self.registration = registration
        return registration

    def lease(self, wait_s: float, cancel: threading.Event | None = None) -> JobSpec | None:
        """Long-poll for a job; returns None when none came (or ``cancel`` was set meanwhile)."""

        def call(reg: Registration) -> Any:
            wait = min(wait_s, reg.max_wait_s) if reg.max_wait_s > 0 else wait_s
            request = pb.LeaseJobRequest(
                agent_id=reg.agent_id,
                session=reg.session,
                device=self.device,
                capabilities=self.capabilities,
                wait_s=wait,
            )
            future = self.stub.LeaseJob.future(request, timeout=wait + self.rpc_timeout_s)
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            while not done.wait(0.1):
                if cancel is not None and cancel.is_set():
                    future.cancel()  # a job leased meanwhile comes back when its lease lapses
                    return None
            return future.result()

        reply = self._authed(call)
        if reply is None or not reply.HasField("job"):
            return None
        return job_from_pb(reply.job)

    def heartbeat(self, job: JobSpec | None = None) -> HeartbeatReply:
        def call(reg: Registration) -> Any:
            request = pb.HeartbeatRequest(
                agent_id=reg.agent_id,
                session=reg.session,
                job_id=job.job_id if job else 0,
                lease_id=job.lease_id if job else "",
            )
            return self.stub.Heartbeat(request, timeout=self.rpc_timeout_s)

        reply = self._authed(call)
        return HeartbeatReply(ok=reply.ok, lease_lost=reply.lease_lost)

    def report(self, report: dict[str, Any]) -> str:
        """Deliver one outbox report; returns "accepted", "duplicate" or "stale_lease"."""

        def call(reg: Registration) -> Any:
            request = report_to_pb(report, reg.agent_id, reg.session)
            method = self.stub.ReportResult if report["kind"] == "result" else self.stub.ReportFailure
            return method(request, timeout=self.rpc_timeout_s)

        try:
            reply = self._authed(call)
        except grpc.RpcError as exc:  # only the non-transient ones get here
            raise ReportRejected(f"{exc.code().name}: {exc.details()}") from None
        outcome = OUTCOMES.get(reply.outcome)
        if outcome is None:
            raise ReportRejected(f"the server answered an unknown outcome {reply.outcome} ({reply.message})")
        return outcome

    # -- plumbing -----------------------------------------------------------------------------------
    def _authed(self, call: Callable[[Registration], T]) -> T:
        """Run ``call`` with a registration; on UNAUTHENTICATED register again and retry once."""
        for attempt in (1, 2):
            reg = self.registration or self.register()
            try:
                return call(reg)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and attempt == 1:
                    log.info("session refused (%s); registering again", exc.details())
                    with self._lock:
                        self.registration = None
                    continue
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    raise AuthRefused(exc.details() or "the server refused the session") from None
                if code in _TRANSIENT:
                    raise _away(exc) from None
                raise
        raise AssertionError("unreachable")


def _away(exc: grpc.RpcError) -> ServerAway:
    return ServerAway(f"{exc.code().name}: {exc.details()}")
