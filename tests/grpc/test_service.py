"""The agent service over real gRPC on loopback, on SQLite and PostgreSQL, driven by the raw stub."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
from eagle_server.grpc_service import AgentService, AgentServiceSettings, GrpcServer
from latbench.nb201 import Arch
from latbench.store.models import Agent, Device, Measurement
from latbench.store.tokens import create_agent_token, revoke_token

from .helpers import RawAgent, count_measurements, jobs, start_server, submit


def _code(exc_info: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc_info.value.code()


# -- register / auth ---------------------------------------------------------------------------------
def test_bad_token_is_refused_with_a_clear_message(server: GrpcServer, token: str) -> None:
    agent = RawAgent(server.port, "eat_not-a-real-token")
    with pytest.raises(grpc.RpcError) as exc:
        agent.register()
    assert _code(exc) == grpc.StatusCode.UNAUTHENTICATED
    assert "token refused" in exc.value.details() and "eagle agents token create" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        agent.register(token="")
    assert _code(exc) == grpc.StatusCode.UNAUTHENTICATED
    assert "no agent token" in exc.value.details()
    agent.close()


def test_register_returns_a_session_and_the_server_settings(server: GrpcServer, token: str) -> None:
    agent = RawAgent(server.port, token)
    reply = agent.register()
    assert len(reply.agent_id) == 36 and len(reply.session) == 64
    assert reply.settings.lease_s == server.service.settings.lease_s
    assert 0 < reply.settings.heartbeat_s < reply.settings.lease_s
    assert reply.settings.max_wait_s == server.service.settings.max_wait_s
    other = RawAgent(server.port, token)
    assert other.register().session != reply.session  # per agent
    agent.close()
    other.close()


def test_bad_device_or_capability_is_invalid_argument(server: GrpcServer, token: str) -> None:
    agent = RawAgent(server.port, token)
    with pytest.raises(grpc.RpcError) as exc:
        agent.register(device="Desktop CPU")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT and "device name" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        agent.register(capabilities=["tf"])
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT and "runtime>:<precision" in exc.value.details()
    agent.close()


def test_calls_need_a_valid_session(raw: RawAgent) -> None:
    for call in (
        lambda: raw.lease(session="0" * 64),
        lambda: raw.heartbeat(session=""),
        lambda: raw.lease(agent_id="no-such-agent"),
    ):
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert _code(exc) == grpc.StatusCode.UNAUTHENTICATED
        assert "register again" in exc.value.details() or "Register first" in exc.value.details()


def test_revoked_token_ends_sessions(factory: sessionmaker[Session], token: str) -> None:
    settings = AgentServiceSettings(lease_s=5, heartbeat_s=1, max_wait_s=1, poll_s=0.05, session_cache_s=0.01)
    server = start_server(factory, settings=settings)
    try:
        agent = RawAgent(server.port, token)
        agent.register()
        assert agent.heartbeat().ok
        with factory() as session:
            assert revoke_token(session, token)
        time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as exc:
            agent.heartbeat()
        assert _code(exc) == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as exc:
            agent.register()
        assert _code(exc) == grpc.StatusCode.UNAUTHENTICATED
        agent.close()
    finally:
        server.stop(0)


def test_sessions_survive_a_server_restart(factory: sessionmaker[Session], token: str) -> None:
    first = start_server(factory)
    port = first.port
    agent = RawAgent(port, token)
    agent.register()
    first.stop(0).wait(5)
    second = start_server(factory, port=port)
    try:
        assert agent.heartbeat().ok  # same agent id and session, new server process state
    finally:
        agent.close()
        second.stop(0)


# -- leasing -----------------------------------------------------------------------------------------
def test_lease_hands_out_the_job_with_everything_an_agent_needs(factory: sessionmaker[Session], raw: RawAgent) -> None:
    campaign = submit(factory, [7], runs=30)
    reply = raw.lease()
    assert reply.HasField("job")
    job = reply.job
    assert job.arch_index == 7 and job.arch_str == Arch.from_index(7).arch_str
    assert (job.runtime, job.precision, job.attempt, job.campaign_id) == ("tf", "fp32", 1, campaign)
    assert (job.protocol.runs, job.protocol.warmup, job.protocol.group_size) == (30, 2, 10)
    assert len(job.lease_id) == 36 and len(job.canonical_key) == 16
    assert job.lease_expires_at > time.time()
    assert not raw.lease().HasField("job")  # nothing left


def test_lease_matches_capabilities(factory: sessionmaker[Session], raw: RawAgent) -> None:
    submit(factory, [3], runtime="litert", precision="int8")
    assert not raw.lease().HasField("job")  # the agent runs tf:fp32 only
    assert raw.lease(capabilities=["litert:int8"]).job.arch_index == 3


def test_lease_for_another_device_is_refused(raw: RawAgent) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        raw.lease(device="desktop_cpu_other_fp32")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT and "registered for device" in exc.value.details()


def test_long_poll_waits_then_returns_empty(raw: RawAgent) -> None:
    t0 = time.monotonic()
    reply = raw.lease(wait_s=0.6)
    elapsed = time.monotonic() - t0
    assert not reply.HasField("job")
    assert 0.55 <= elapsed < 3.0


def test_long_poll_is_capped_by_max_wait(raw: RawAgent, server: GrpcServer) -> None:
    t0 = time.monotonic()
    raw.lease(wait_s=60)
    assert time.monotonic() - t0 < server.service.settings.max_wait_s + 1.5


def test_long_poll_wakes_up_for_a_job_queued_meanwhile(factory: sessionmaker[Session], token: str) -> None:
    settings = AgentServiceSettings(lease_s=5, heartbeat_s=1, max_wait_s=20, poll_s=0.05)
    server = start_server(factory, settings=settings)
    agent = RawAgent(server.port, token)
    agent.register()
    queued_at: list[float] = []

    def queue_one() -> None:
        submit(factory, [11])
        queued_at.append(time.monotonic())

    timer = threading.Timer(0.4, queue_one)
    try:
        t0 = time.monotonic()
        timer.start()
        reply = agent.lease(wait_s=20)
        answered = time.monotonic()
        timer.join()
        assert reply.job.arch_index == 11
        assert answered - t0 > 0.35  # it waited for the job...
        assert answered - queued_at[0] < 3.0  # ...and answered soon after it was queued, not at the end
    finally:
        agent.close()
        server.stop(0)


# -- heartbeats and reports --------------------------------------------------------------------------
def test_heartbeat_extends_the_lease_and_reports_loss(factory: sessionmaker[Session], raw: RawAgent) -> None:
    submit(factory, [5])
    job = raw.lease().job
    reply = raw.heartbeat(job)
    assert reply.ok and not reply.lease_lost and reply.lease_expires_at >= job.lease_expires_at
    assert raw.heartbeat().ok  # idle liveness
    assert raw.heartbeat(job, lease_id="00000000-0000-0000-0000-000000000000").lease_lost
    with pytest.raises(grpc.RpcError) as exc:
        raw.heartbeat(job, lease_id="")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT


def test_result_is_recorded_exactly_once(factory: sessionmaker[Session], raw: RawAgent) -> None:
    submit(factory, [5])
    job = raw.lease().job
    first = raw.result(job, latency_ms=2.5)
    assert first.outcome == pb.REPORT_OUTCOME_ACCEPTED
    assert raw.result(job, latency_ms=2.5).outcome == pb.REPORT_OUTCOME_DUPLICATE
    stale = raw.result(job, lease_id="00000000-0000-0000-0000-000000000000")
    assert stale.outcome == pb.REPORT_OUTCOME_STALE_LEASE and "nothing recorded" in stale.message
    assert count_measurements(factory) == 1
    with factory() as session:
        m = session.query(Measurement).filter(Measurement.job_id == job.job_id).one()
    assert m.latency_ms == 2.5 and m.raw_ms == [2.5] * 10 and m.agent_id == raw.agent_id
    assert m.stats["median_ms"] == 2.5 and m.stats["build_s"] == 0.25 and m.stats["convert_s"] == 0.5
    assert m.versions == {"debug": "1"} and (m.runtime, m.precision) == ("tf", "fp32")
    assert jobs(factory)[0].state == "done"


def test_report_from_another_agent_is_stale(factory: sessionmaker[Session], raw: RawAgent, server: GrpcServer) -> None:
    submit(factory, [5])
    job = raw.lease().job
    other = RawAgent(server.port, raw.token)
    other.register()
    assert other.result(job).outcome == pb.REPORT_OUTCOME_STALE_LEASE
    assert count_measurements(factory) == 0
    other.close()


def test_failure_requeues_then_the_retry_succeeds(factory: sessionmaker[Session], raw: RawAgent) -> None:
    submit(factory, [9])
    first = raw.lease().job
    reply = raw.failure(first, pb.ERROR_CLASS_TIMEOUT, "ran past 2 s")
    assert reply.outcome == pb.REPORT_OUTCOME_ACCEPTED
    assert raw.failure(first, pb.ERROR_CLASS_TIMEOUT, "ran past 2 s").outcome == pb.REPORT_OUTCOME_DUPLICATE
    (job,) = jobs(factory)
    assert (job.state, job.error_class, job.last_error) == ("queued", "timeout", "ran past 2 s")
    second = raw.lease().job
    assert second.job_id == first.job_id and second.attempt == 2 and second.lease_id != first.lease_id
    assert raw.result(second).outcome == pb.REPORT_OUTCOME_ACCEPTED
    assert raw.result(first).outcome == pb.REPORT_OUTCOME_STALE_LEASE  # the first lease is over


def test_unsupported_fails_the_job_at_once(factory: sessionmaker[Session], raw: RawAgent) -> None:
    submit(factory, [9])
    raw.failure(raw.lease().job, pb.ERROR_CLASS_UNSUPPORTED, "no such op")
    (job,) = jobs(factory)
    assert (job.state, job.error_class) == ("failed", "unsupported")


def test_malformed_reports_are_invalid_argument(factory: sessionmaker[Session], raw: RawAgent) -> None:
    submit(factory, [9])
    job = raw.lease().job
    cases = [
        (lambda: raw.failure(job, pb.ERROR_CLASS_UNSPECIFIED), "error_class must be one of"),
        (lambda: raw.result(job, job_id=0), "job_id must be a positive"),
        (lambda: raw.result(job, lease_id=""), "lease_id is required"),
        (lambda: raw.result(job, latency_ms=-1.0), "latency_ms must be a positive"),
    ]
    for call, message in cases:
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        raw.result(job, job_id=987654)
    assert _code(exc) == grpc.StatusCode.NOT_FOUND
    assert count_measurements(factory) == 0


def test_expired_lease_is_requeued_by_the_sweep(factory: sessionmaker[Session], token: str) -> None:
    settings = AgentServiceSettings(lease_s=0.5, heartbeat_s=0.1, max_wait_s=1, poll_s=0.05, requeue_every_s=0.2)
    server = start_server(factory, settings=settings)
    try:
        agent = RawAgent(server.port, token)
        agent.register()
        submit(factory, [13])
        job = agent.lease().job
        deadline = time.monotonic() + 10
        while jobs(factory)[0].state != "queued" and time.monotonic() < deadline:
            time.sleep(0.1)
        (row,) = jobs(factory)
        assert row.state == "queued" and row.error_class == "lease_expired"  # no lease call needed
        assert agent.heartbeat(job).lease_lost
        assert agent.result(job).outcome == pb.REPORT_OUTCOME_STALE_LEASE
        assert agent.lease().job.attempt == 2
        agent.close()
    finally:
        server.stop(0)


def test_register_creates_a_new_device_with_its_facts(factory: sessionmaker[Session], server: GrpcServer) -> None:
    with factory() as session:
        token = create_agent_token(session)
    agent = RawAgent(server.port, token, device="desktop_cpu_brand_new_fp32")
    agent_id = agent.register().agent_id
    agent.close()
    with factory() as session:
        device = session.query(Device).filter(Device.name == "desktop_cpu_brand_new_fp32").one()
        row = session.get(Agent, agent_id)
        assert row is not None and row.device_id == device.id
        assert row.capabilities == ["tf:fp32"] and row.backend_check["ok"] is True
    assert device.hardware == "test cpu" and device.host["backend"] == "debug"


def test_group_commit_runs_on_postgresql_and_can_be_turned_off(
    factory: sessionmaker[Session], raw: RawAgent, server: GrpcServer
) -> None:
    postgresql = factory.kw["bind"].dialect.name == "postgresql"
    assert (server.service.group is not None) == postgresql
    submit(factory, [0, 1])
    job = raw.lease().job
    assert raw.result(job).outcome == pb.REPORT_OUTCOME_ACCEPTED
    if postgresql:  # the lease and the report went through the batches
        assert server.service.group.leases.requests >= 1 and server.service.group.reports.requests == 1
    off = AgentService(factory, AgentServiceSettings(group_commit=False))
    assert off.group is None
    off.close()
