"""Shared by the gRPC and agent tests: a migrated store, a running agent service, campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
from eagle_agent.proto.eagle.v1 import agent_pb2_grpc as pb_grpc
from eagle_server.grpc_service import AgentServiceSettings, GrpcServer, serve_grpc
from latbench.store import queue
from latbench.store.devices import ensure_device
from latbench.store.models import Job, Measurement

DEVICE = "desktop_cpu_test_box_fp32"
# Short times so expiry and long polls are quick to observe.
FAST = AgentServiceSettings(lease_s=6.0, heartbeat_s=0.5, max_wait_s=2.0, poll_s=0.05, requeue_every_s=0.5)


def start_server(factory: sessionmaker[Session], port: int = 0, settings: AgentServiceSettings = FAST) -> GrpcServer:
    return serve_grpc(factory, f"127.0.0.1:{port}", settings)


def add_device(factory: sessionmaker[Session], name: str = DEVICE) -> str:
    with factory() as session:
        ensure_device(session, name, hardware="test box")
        session.commit()
    return name


def submit(
    factory: sessionmaker[Session],
    archs: Sequence[int],
    runtime: str = "tf",
    precision: str = "fp32",
    runs: int = 20,
    device: str = DEVICE,
    max_attempts: int = 3,
) -> int:
    with factory() as session:
        campaign = queue.submit_campaign(
            session,
            device,
            list(archs),
            runtime=runtime,
            precision=precision,
            protocol={"runs": runs, "warmup": 2, "group_size": 10},
            max_attempts=max_attempts,
            dedupe=False,
        )
        return campaign.id


def jobs(factory: sessionmaker[Session], campaign_id: int | None = None) -> list[Job]:
    with factory() as session:
        stmt = select(Job).order_by(Job.id)
        if campaign_id is not None:
            stmt = stmt.where(Job.campaign_id == campaign_id)
        return list(session.scalars(stmt))


def measurements(factory: sessionmaker[Session]) -> list[Measurement]:
    with factory() as session:
        return list(
            session.scalars(select(Measurement).where(Measurement.job_id.is_not(None)).order_by(Measurement.id))
        )


def count_measurements(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Measurement).where(Measurement.job_id.is_not(None))))


class RawAgent:
    """Talks the protocol with the generated stub directly (no agent code), to test the server alone."""

    def __init__(self, port: int, token: str, device: str = DEVICE, caps: Sequence[str] = ("tf:fp32",)) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.AgentServiceStub(self.channel)
        self.token, self.device, self.caps = token, device, list(caps)
        self.agent_id = self.session = ""

    def close(self) -> None:
        self.channel.close()

    def register(self, **overrides: Any) -> Any:
        fields: dict[str, Any] = {
            "token": self.token,
            "device": self.device,
            "hostname": "test-host",
            "capabilities": self.caps,
            "backend": "debug",
            "backend_check": pb.BackendCheck(ok=True, found={"debug": "1"}),
            "agent_version": "test",
            "host_facts": {"hardware": "test cpu"},
        }
        fields.update(overrides)
        reply = self.stub.Register(pb.RegisterRequest(**fields), timeout=10)
        self.agent_id, self.session = reply.agent_id, reply.session
        return reply

    def lease(self, wait_s: float = 0.0, **overrides: Any) -> Any:
        fields = {
            "agent_id": self.agent_id,
            "session": self.session,
            "device": self.device,
            "capabilities": self.caps,
            "wait_s": wait_s,
        }
        fields.update(overrides)
        return self.stub.LeaseJob(pb.LeaseJobRequest(**fields), timeout=wait_s + 10)

    def heartbeat(self, job: Any = None, **overrides: Any) -> Any:
        fields = {"agent_id": self.agent_id, "session": self.session}
        if job is not None:
            fields.update(job_id=job.job_id, lease_id=job.lease_id)
        fields.update(overrides)
        return self.stub.Heartbeat(pb.HeartbeatRequest(**fields), timeout=10)

    def result(self, job: Any, latency_ms: float = 1.5, **overrides: Any) -> Any:
        fields: dict[str, Any] = {
            "agent_id": self.agent_id,
            "session": self.session,
            "job_id": job.job_id,
            "lease_id": job.lease_id,
            "latency_ms": latency_ms,
            "raw_ms": [latency_ms] * 10,
            "versions": {"debug": "1"},
            "runtime": job.runtime,
            "precision": job.precision,
            "build_s": 0.25,
            "convert_s": 0.5,
        }
        fields.update(overrides)
        request = pb.ReportResultRequest(**fields)
        request.stats.update({"median_ms": latency_ms, "runs": 10})
        return self.stub.ReportResult(request, timeout=10)

    def failure(self, job: Any, error_class: int = pb.ERROR_CLASS_RUNTIME, message: str = "boom", **kw: Any) -> Any:
        fields = {
            "agent_id": self.agent_id,
            "session": self.session,
            "job_id": job.job_id,
            "lease_id": job.lease_id,
            "error_class": error_class,
            "message": message,
        }
        fields.update(kw)
        return self.stub.ReportFailure(pb.ReportFailureRequest(**fields), timeout=10)
