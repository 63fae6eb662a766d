"""The agent's client: message mapping, re-registration on a refused session, server-away errors."""

from __future__ import annotations

import dataclasses

import pytest

from eagle_agent.backends import CheckResult
from eagle_agent.client import AgentClient, AuthRefused, ServerAway, job_from_pb, report_to_pb
from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
from eagle_server.grpc_service import GrpcServer
from tests.grpc.helpers import DEVICE


def _client(port: int, token: str) -> AgentClient:
    return AgentClient(
        f"127.0.0.1:{port}", token, DEVICE, ["tf:fp32"], check=CheckResult({"x": "1"}, {}), rpc_timeout_s=3
    )


def test_a_refused_session_registers_again_transparently(server: GrpcServer, token: str) -> None:
    client = _client(server.port, token)
    first = client.register()
    assert client.registration is not None
    client.registration = dataclasses.replace(first, session="f" * 64)
    assert client.heartbeat().ok
    assert client.registration.agent_id != first.agent_id  # a new agent: old leases are stale
    client.close()


def test_a_refused_token_raises_auth_refused(server: GrpcServer, token: str) -> None:
    client = _client(server.port, "eat_wrong")
    with pytest.raises(AuthRefused, match="agent token refused"):
        client.heartbeat()
    client.close()


def test_no_server_is_server_away() -> None:
    client = _client(1, "t")  # nothing listens on port 1
    with pytest.raises(ServerAway, match="UNAVAILABLE"):
        client.register()
    client.close()


def test_job_and_report_mapping() -> None:
    job = job_from_pb(
        pb.Job(
            job_id=3,
            lease_id="L",
            arch_index=9,
            arch_str="s",
            runtime="litert",
            precision="int8",
            attempt=2,
            campaign_id=4,
            canonical_key="k",
            protocol=pb.ProtocolParams(runs=100, warmup=5, group_size=10, pause_s=0.5),
        )
    )
    assert (job.job_id, job.attempt, job.capability, job.canonical_key) == (3, 2, "litert:int8", "k")
    assert job.params.runs == 100 and job.params.pause_s == 0.5
    result = report_to_pb(
        {
            "kind": "result",
            "job_id": 3,
            "lease_id": "L",
            "latency_ms": 1.5,
            "stats": {"groups": 10, "x": [1.0]},
            "raw_ms": [1.0, 2.0],
            "versions": {"tf": "2.21"},
            "runtime": "litert",
            "precision": "int8",
            "build_s": 1.0,
            "convert_s": 2.0,
            "cached": False,
        },
        "agent",
        "sess",
    )
    assert isinstance(result, pb.ReportResultRequest)
    assert (result.agent_id, result.session, result.job_id, list(result.raw_ms)) == ("agent", "sess", 3, [1.0, 2.0])
    assert result.stats["groups"] == 10 and result.convert_s == 2.0
    failure = report_to_pb(
        {"kind": "failure", "job_id": 3, "lease_id": "L", "error_class": "timeout", "message": "m" * 5000}, "a", "s"
    )
    assert failure.error_class == pb.ERROR_CLASS_TIMEOUT and len(failure.message) == 4000
    with pytest.raises(ValueError, match="unknown report kind"):
        report_to_pb({"kind": "other", "job_id": 1, "lease_id": "L"}, "a", "s")
