"""The gRPC side of the server: agents register, lease jobs, send heartbeats and report (the protocol is
written down in ``protos/eagle/v1/agent.proto``).

:class:`AgentService` is a thin, thread-safe adapter over :mod:`latbench.store.queue`: every call opens
its own SQLAlchemy session from the factory, and the queue functions own their transactions, so the
servicer holds no state but a short cache of verified sessions.

Sessions: Register returns ``HMAC-SHA256(key=token_hash, msg=agent_id)``. The token hash is the store's
record of the agent's token, so sessions survive a server restart and die with their token (revoked
tokens are noticed within ``session_cache_s``).

LeaseJob is a long poll: a cheap read-only "is there anything for this device?" check every ``poll_s``
and a real (write) lease attempt only when it says yes, until ``wait_s`` is over. Expired leases are
requeued by every lease attempt (the queue does it per device) and by a background sweep every
``requeue_every_s`` seconds, so campaign progress is right even while no agent of a device asks.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import grpc
from google.protobuf import json_format
from sqlalchemy import exists, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
from eagle_agent.proto.eagle.v1 import agent_pb2_grpc as pb_grpc
from latbench import __version__
from latbench.store import queue, queue_pg
from latbench.store.archs import architecture_rows
from latbench.store.db import is_postgresql
from latbench.store.group_commit import SINGLE, GroupCommit
from latbench.store.models import Agent, AgentToken, Device, Job, JobState, utcnow
from latbench.store.tokens import AuthError

log = logging.getLogger(__name__)

OUTCOME_TO_PB = {
    queue.ReportOutcome.ACCEPTED: pb.REPORT_OUTCOME_ACCEPTED,
    queue.ReportOutcome.DUPLICATE: pb.REPORT_OUTCOME_DUPLICATE,
    queue.ReportOutcome.STALE_LEASE: pb.REPORT_OUTCOME_STALE_LEASE,
}
OUTCOME_MESSAGES = {
    queue.ReportOutcome.ACCEPTED: "recorded",
    queue.ReportOutcome.DUPLICATE: "this lease's report was recorded before",
    queue.ReportOutcome.STALE_LEASE: "the lease expired or was superseded; nothing recorded",
}
ERROR_CLASS_FROM_PB = {
    pb.ERROR_CLASS_BUILD: "build",
    pb.ERROR_CLASS_CONVERT: "convert",
    pb.ERROR_CLASS_COMPILE: "compile",
    pb.ERROR_CLASS_UNSUPPORTED: "unsupported",
    pb.ERROR_CLASS_RUNTIME: "runtime",
    pb.ERROR_CLASS_TIMEOUT: "timeout",
}
BAD_TOKEN = (
    "agent token refused: it is unknown or revoked; create one with `eagle agents token create` "
    "and start the agent with --token"
)


@dataclass(frozen=True)
class AgentServiceSettings:
    """What the gRPC service tells agents and how it polls (the server's settings class fills it)."""

    lease_s: float = 60.0  # a lease lasts this long without a heartbeat
    heartbeat_s: float = 15.0  # agents send heartbeats this often while a job runs
    max_wait_s: float = 30.0  # longest LeaseJob long poll
    poll_s: float = 0.2  # long-poll check interval
    requeue_every_s: float = 10.0  # background sweep of expired leases (0: off)
    session_cache_s: float = 30.0  # how long a verified session is trusted without a lookup
    max_workers: int = 64  # concurrent RPCs (each long poll holds one)
    group_commit: bool = True  # PostgreSQL: leases and reports arriving together run as one statement

    def __post_init__(self) -> None:
        for name in ("lease_s", "heartbeat_s", "max_wait_s", "poll_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.heartbeat_s >= self.lease_s:
            raise ValueError(f"heartbeat_s ({self.heartbeat_s}) must be shorter than lease_s ({self.lease_s})")
        if self.max_workers < 2:
            raise ValueError(f"max_workers must be >= 2, got {self.max_workers}")


def session_secret(token_hash: str, agent_id: str) -> str:
    return hmac.new(token_hash.encode(), b"eagle-session:" + agent_id.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _AgentInfo:
    device_id: int
    device: str
    expires: float  # monotonic


class _Abort(Exception):
    """Raised by ``_abort`` so type checkers know the call does not return (context.abort raises too)."""


class AgentService(pb_grpc.AgentServiceServicer):
    """The servicer; see the module docstring."""

    def __init__(self, session_factory: sessionmaker[Session], settings: AgentServiceSettings | None = None) -> None:
        self.sessions = session_factory
        self.settings = settings or AgentServiceSettings()
        self.stopping = threading.Event()
        self._verified: dict[tuple[str, str], _AgentInfo] = {}
        self._lock = threading.Lock()
        bind = session_factory.kw.get("bind")
        postgresql = bind is not None and bind.dialect.name == "postgresql"
        self.group = GroupCommit(session_factory) if postgresql and self.settings.group_commit else None

    def close(self) -> None:
        """Stop the group-commit threads (after the gRPC server stopped: no call is waiting)."""
        if self.group is not None:
            self.group.close()

    # -- plumbing ---------------------------------------------------------------------------------
    @contextmanager
    def _db(self, context: grpc.ServicerContext) -> Iterator[Session]:
        """A session for one call; store exceptions become gRPC statuses with a readable message."""
        with self.sessions() as session, self._errors(context):
            yield session

    @contextmanager
    def _errors(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Store exceptions become gRPC statuses with a readable message."""
        try:
            yield
        except AuthError:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, BAD_TOKEN)
        except queue.UnknownAgent as exc:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except queue.UnknownJob as exc:
            _abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except ValueError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except OperationalError as exc:
            log.warning("database error: %s", exc)
            _abort(context, grpc.StatusCode.UNAVAILABLE, "the server's database is unavailable; retry later")

    def _authenticate(self, agent_id: str, session_value: str, context: grpc.ServicerContext) -> _AgentInfo:
        if not agent_id or not session_value:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "agent_id and session are required: call Register first")
        key = (agent_id, session_value)
        now = time.monotonic()
        with self._lock:
            info = self._verified.get(key)
        if info is not None and info.expires > now:
            return info
        with self._db(context) as db:
            row = db.execute(
                select(AgentToken.token_hash, AgentToken.revoked, Agent.device_id, Device.name)
                .join(AgentToken, Agent.token_id == AgentToken.id)
                .join(Device, Agent.device_id == Device.id)
                .where(Agent.id == agent_id)
            ).first()
            db.commit()
        if (
            row is None
            or row.revoked
            or not hmac.compare_digest(session_secret(row.token_hash, agent_id), session_value)
        ):
            with self._lock:
                self._verified.pop(key, None)
            _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                f"session of agent {agent_id} is not valid (unknown agent, revoked token or wrong session); "
                "register again",
            )
        info = _AgentInfo(row.device_id, row.name, now + self.settings.session_cache_s)
        with self._lock:
            self._verified[key] = info
        return info

    # -- RPCs -------------------------------------------------------------------------------------
    def Register(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.token:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no agent token given: start the agent with --token")
        if not request.device:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "device is required (a LatBench-style name or 'local')")
        check = json_format.MessageToDict(request.backend_check, always_print_fields_with_no_presence=True)
        host = {
            **dict(request.host_facts),
            "backend": request.backend,
            "agent_version": request.agent_version,
        }
        with self._db(context) as db:
            agent_id = queue.register_agent(
                db,
                request.token,
                request.device,
                request.hostname,
                list(request.capabilities),
                check,
                hardware=request.host_facts.get("hardware", ""),
                host=host,
            )
            token_hash = db.scalar(
                select(AgentToken.token_hash).join(Agent, Agent.token_id == AgentToken.id).where(Agent.id == agent_id)
            )
            db.commit()
        assert token_hash is not None
        log.info("agent %s registered: device %s, %s", agent_id, request.device, ", ".join(request.capabilities))
        s = self.settings
        return pb.RegisterResponse(
            agent_id=agent_id,
            session=session_secret(token_hash, agent_id),
            settings=pb.ServerSettings(
                lease_s=s.lease_s, heartbeat_s=s.heartbeat_s, max_wait_s=s.max_wait_s, server_version=__version__
            ),
        )

    def LeaseJob(self, request: Any, context: grpc.ServicerContext) -> Any:
        info = self._authenticate(request.agent_id, request.session, context)
        if request.device and request.device != info.device:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"agent {request.agent_id} registered for device {info.device!r}, not {request.device!r}",
            )
        caps = sorted(set(request.capabilities))
        if not caps:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "capabilities are required (e.g. 'tf:fp32')")
        wait_s = min(max(0.0, request.wait_s), self.settings.max_wait_s)
        deadline = time.monotonic() + wait_s
        first = True
        while True:
            if first or self._anything_for(info.device_id, caps, context):
                leased = self._lease(request.agent_id, info.device, caps, context)
                if leased is not None:
                    return pb.LeaseJobResponse(job=_job_to_pb(leased))
            first = False
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not context.is_active():
                return pb.LeaseJobResponse()
            if self.stopping.wait(min(self.settings.poll_s, remaining)):
                return pb.LeaseJobResponse()

    def _lease(
        self, agent_id: str, device: str, caps: list[str], context: grpc.ServicerContext
    ) -> queue.LeasedJob | None:
        if self.group is not None:  # a batch never raises: what it cannot settle comes back as SINGLE
            leased = self.group.lease(agent_id, device, caps, self.settings.lease_s)
            if leased is not SINGLE:
                return leased  # type: ignore[no-any-return]
        with self._db(context) as db:
            return queue.lease_job(db, agent_id, device, caps, lease_s=self.settings.lease_s)

    def _anything_for(self, device_id: int, caps: list[str], context: grpc.ServicerContext) -> bool:
        """Read-only: a queued job (or an expired lease) this agent could take."""
        now = utcnow()
        with self._db(context) as db:
            # PostgreSQL: one read in autocommit, no BEGIN / COMMIT round trips for every waiting agent's
            # every poll. (Not on SQLite: its dialect would undo the store's own BEGIN handling, db.py.)
            conn = queue_pg.autocommit(db) if is_postgresql(db) else db
            found = conn.scalar(
                select(
                    exists().where(
                        Job.device_id == device_id,
                        Job.requirement.in_(caps),
                        or_(
                            Job.state == JobState.QUEUED.value,
                            (Job.state == JobState.LEASED.value) & (Job.lease_expires_at < now),
                        ),
                    )
                )
            )
            db.commit()
        return bool(found)

    def Heartbeat(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authenticate(request.agent_id, request.session, context)
        job_id = int(request.job_id) or None
        if job_id is not None and not request.lease_id:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "lease_id is required with job_id")
        with self._db(context) as db:
            alive = queue.heartbeat(
                db, request.agent_id, job_id, request.lease_id or None, extend_s=self.settings.lease_s
            )
        expires = (utcnow() + timedelta(seconds=self.settings.lease_s)).timestamp() if job_id and alive else 0.0
        return pb.HeartbeatResponse(ok=True, lease_lost=job_id is not None and not alive, lease_expires_at=expires)

    def ReportResult(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authenticate(request.agent_id, request.session, context)
        _check_report_keys(request, context)
        stats = json_format.MessageToDict(request.stats)
        # Build and conversion times are kept with the protocol statistics (the measurement's record).
        stats["build_s"] = request.build_s
        stats["convert_s"] = request.convert_s
        args = (
            request.job_id,
            request.lease_id,
            request.agent_id,
            request.latency_ms,
            stats,
            list(request.raw_ms),
            dict(request.versions),
            request.runtime,
            request.precision,
        )
        outcome = SINGLE
        if self.group is not None:
            with self._errors(context):
                outcome = self.group.report(*args)
        if outcome is SINGLE:  # no group commit, or refused there: the single path says why
            with self._db(context) as db:
                outcome = queue.report_result(db, *args)
        return pb.ReportResponse(outcome=OUTCOME_TO_PB[outcome], message=OUTCOME_MESSAGES[outcome])

    def ReportFailure(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authenticate(request.agent_id, request.session, context)
        _check_report_keys(request, context)
        error_class = ERROR_CLASS_FROM_PB.get(request.error_class)
        if error_class is None:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"error_class must be one of {', '.join(pb.ErrorClass.keys()[1:])}, got {request.error_class}",
            )
        with self._db(context) as db:
            outcome = queue.report_failure(
                db, request.job_id, request.lease_id, request.agent_id, error_class, request.message
            )
        return pb.ReportResponse(outcome=OUTCOME_TO_PB[outcome], message=OUTCOME_MESSAGES[outcome])

    # -- housekeeping -----------------------------------------------------------------------------
    def requeue_expired(self) -> int:
        with self.sessions() as db:
            return queue.requeue_expired(db)


def _check_report_keys(request: Any, context: grpc.ServicerContext) -> None:
    if request.job_id <= 0:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"job_id must be a positive job id, got {request.job_id}")
    if not request.lease_id:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "lease_id is required")


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise _Abort(message)  # context.abort raises; this line only tells type checkers so


def _job_to_pb(job: queue.LeasedJob) -> Any:
    protocol = job.protocol
    return pb.Job(
        job_id=job.job_id,
        lease_id=job.lease_id,
        arch_index=job.arch_index,
        arch_str=job.arch_str,
        runtime=job.runtime,
        precision=job.precision,
        protocol=pb.ProtocolParams(
            runs=int(protocol["runs"]),
            warmup=int(protocol.get("warmup", 0)),
            group_size=int(protocol["group_size"]),
            pause_s=float(protocol.get("pause_s", 0.0)),
        ),
        attempt=job.attempt,
        lease_expires_at=job.lease_expires_at.timestamp() if job.lease_expires_at else 0.0,
        campaign_id=job.campaign_id,
        canonical_key=job.canonical_key,
    )


class GrpcServer(grpc.Server):
    """A started gRPC server with the agent service, its bound ``port`` and the requeue sweep.

    ``stop()`` ends long polls at once, stops the sweep, then stops the gRPC server.
    """

    def __init__(self, server: grpc.Server, service: AgentService, port: int) -> None:
        self._server = server
        self.service = service
        self.port = port
        self._sweeper: threading.Thread | None = None

    def _start_sweeper(self, every_s: float) -> None:
        def sweep() -> None:
            while not self.service.stopping.wait(every_s):
                try:
                    count = self.service.requeue_expired()
                    if count:
                        log.info("requeued %d job(s) whose lease expired", count)
                except Exception as exc:  # keep sweeping: the database may come back
                    log.warning("requeue sweep failed: %s", exc)

        self._sweeper = threading.Thread(target=sweep, name="eagle-requeue", daemon=True)
        self._sweeper.start()

    # grpc.Server interface, delegated.
    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: Any) -> int:
        return self._server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        self.service.stopping.set()
        event = self._server.stop(grace)
        if self._sweeper is not None:
            self._sweeper.join(timeout=5.0)
        event.wait(5.0 if grace is None else grace + 1.0)  # calls waiting on a batch finish first
        self.service.close()
        return event

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)


def serve_grpc(
    session_factory: sessionmaker[Session],
    address: str = "127.0.0.1:50051",
    settings: AgentServiceSettings | None = None,
    reuse_port: bool = False,
) -> GrpcServer:
    """Start the agent service on ``address`` (port 0: any free port, see ``.port``); returns it started.

    ``reuse_port``: share the port with other processes of this server (SO_REUSEPORT; the kernel spreads
    connections over them, see grpc_workers.py). Off, a port in use is an error.
    """
    settings = settings or AgentServiceSettings()
    architecture_rows()  # computed now (half a second), not by the first leases all at once
    service = AgentService(session_factory, settings)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="eagle-grpc"),
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    pb_grpc.add_AgentServiceServicer_to_server(service, server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for agents on {address}: {exc}") from exc
    if port == 0:
        raise OSError(f"cannot listen for agents on {address} (address in use?)")
    handle = GrpcServer(server, service, port)
    handle.start()
    if settings.requeue_every_s > 0:
        handle._start_sweeper(settings.requeue_every_s)
    log.info("agent service (gRPC) listening on %s", address.rsplit(":", 1)[0] + f":{port}")
    return handle
