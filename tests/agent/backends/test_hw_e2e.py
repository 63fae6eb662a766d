"""End to end with the fake tools on PATH: a real gRPC server and an agent loop (with its worker child
process) per hardware backend measure a 3-model campaign. The tools crash, hang and print garbage on
the first calls: each such attempt is reported as a classified failure, the server requeues the job,
and every job ends measured, none lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_agent.backends import create_backend
from eagle_agent.client import AgentClient
from eagle_agent.config import AgentConfig
from eagle_agent.loop import EXIT_OK, AgentLoop
from eagle_agent.outbox import Outbox
from eagle_agent.worker import ChildWorker
from eagle_server.grpc_service import GrpcServer
from tests.grpc.helpers import add_device, jobs, measurements, submit

from .conftest import SMALL_ARCHS, FakeTools, install_tool

SERIAL = "R58M12ABCDE"


@dataclass
class Scenario:
    device: str
    runtime: str
    precision: str
    backend: str
    faults: dict[str, list[str]]
    expected_errors: list[str]  # error classes of the failed attempts, sorted
    options: Callable[[Path], dict[str, Any]]
    leftovers: Callable[[Path], list[Path]] = field(default=lambda root: [])


def _jetson_options(root: Path) -> dict[str, Any]:
    key = root / "id_ed25519"
    key.write_text("fake key")
    return {
        "host": "nano.lab",
        "user": "lab",
        "key": str(key),
        "remote_dir": str(root / "board"),
        "trtexec_timeout_s": 4,
    }


def _edgetpu_options(root: Path) -> dict[str, Any]:
    library = root / "libedgetpu.so.1"
    library.write_bytes(b"stand-in")
    return {
        "delegate": str(library),
        "delegate_loader": "tests.agent.fake_tools.fake_delegate:load",
        "require_device": False,
        "compile_timeout_s": 2,
    }


def _snpe_options(root: Path) -> dict[str, Any]:
    install_tool("snpe-net-run", root / "phone" / "snpe" / "bin")
    return {
        "serial": SERIAL,
        "device_snpe_dir": str(root / "phone" / "snpe"),
        "device_dir": str(root / "phone" / "eagle"),
        "run_timeout_s": 4,
    }


def _children(path: Path) -> list[Path]:
    return list(path.iterdir()) if path.exists() else []


SCENARIOS = {
    "jetson_ssh": Scenario(
        device="embedded_gpu_jetson_nano_fp16",
        runtime="tensorrt",
        precision="fp16",
        backend="jetson_trt",
        faults={"trtexec": ["crash", "hang", "garbage"]},
        expected_errors=["runtime", "runtime", "timeout"],
        options=_jetson_options,
        leftovers=lambda root: _children(root / "board"),
    ),
    "edgetpu": Scenario(
        device="embedded_tpu_edgetpu_int8",
        runtime="edgetpu",
        precision="int8",
        backend="edgetpu",
        faults={"edgetpu_compiler": ["crash", "hang", "garbage", "partial"]},
        expected_errors=["compile", "compile", "timeout"],
        options=_edgetpu_options,
    ),
    "snpe_gpu": Scenario(
        device="mobile_gpu_snapdragon_675_adreno_612_fp16",
        runtime="snpe",
        precision="fp16",
        backend="snpe",
        faults={"snpe-net-run": ["crash", "hang"], "snpe-diagview": ["garbage"]},
        expected_errors=["runtime", "runtime", "timeout"],
        options=_snpe_options,
        leftovers=lambda root: _children(root / "phone" / "eagle"),
    ),
}


def agent_loop(port: int, token: str, scenario: Scenario, workdir: Path, options: dict[str, Any]) -> AgentLoop:
    config = AgentConfig(
        server=f"127.0.0.1:{port}",
        token=token,
        device=scenario.device,
        runtime=scenario.runtime,
        precisions=(scenario.precision,),
        backend=scenario.backend,
        backend_options=options,
        workdir=workdir,
        lease_wait_s=1.0,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
        flush_timeout_s=5.0,
        startup_timeout_s=300.0,
        job_timeout_s=300.0,
    )
    backend = create_backend(config.backend_name, config.backend_options, config.precisions)
    check = backend.check()
    assert check.ok, check.missing
    client = AgentClient(config.server, token, config.device, backend.capabilities(), backend=backend.name, check=check)
    worker = ChildWorker(config.backend_name, config.backend_options, config.precisions, workdir)
    return AgentLoop(config, client, worker, Outbox(workdir))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_campaign_survives_crashing_hanging_and_garbage_tools(
    name: str,
    tools: FakeTools,
    factory: sessionmaker[Session],
    token: str,
    server: GrpcServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scenario = SCENARIOS[name]
    caplog.set_level(logging.WARNING, logger="eagle_agent.loop")
    monkeypatch.setenv("EAGLE_FAKE_SSH_HOSTS", "nano.lab")
    monkeypatch.setenv("EAGLE_FAKE_ADB_DEVICES", f"{SERIAL}:device")
    for tool, kinds in scenario.faults.items():
        tools.fault(tool, *kinds)
    add_device(factory, scenario.device)
    campaign = submit(
        factory,
        list(SMALL_ARCHS),
        runtime=scenario.runtime,
        precision=scenario.precision,
        runs=10,
        device=scenario.device,
        max_attempts=4,
    )
    loop = agent_loop(server.port, token, scenario, tmp_path / "agent", scenario.options(tmp_path))
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(loop.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and any(j.state not in ("done", "failed") for j in jobs(factory, campaign)):
            assert thread.is_alive(), "the agent loop stopped early"
            time.sleep(0.5)
    finally:
        loop.request_stop()
        thread.join(60)
    assert codes == [EXIT_OK]

    finished = jobs(factory, campaign)
    assert [j.state for j in finished] == ["done", "done", "done"], [(j.state, j.last_error) for j in finished]
    assert sum(j.attempts for j in finished) == 6  # three failed attempts, each retried
    failures = [r.args for r in caplog.records if r.name == "eagle_agent.loop" and "failed (%s)" in str(r.msg)]
    assert sorted(str(args[1]) for args in failures) == scenario.expected_errors
    assert all(j.error_class in scenario.expected_errors for j in finished if j.attempts > 1)
    assert (loop.stats.results, loop.stats.failures) == (3, 3) and not loop.outbox.pending()
    rows = measurements(factory)
    assert sorted(m.arch_index for m in rows) == sorted(SMALL_ARCHS)
    for m in rows:
        assert len(m.raw_ms) == 10 and m.latency_ms > 0
        assert (m.runtime, m.precision) == (scenario.runtime, scenario.precision)
    if name == "edgetpu":
        mapping = [m.stats["device_info"]["edgetpu"] for m in rows]
        assert sorted(info["fully_mapped"] for info in mapping) == [False, True, True]  # one compile was partial
    assert tools.pending_faults() == {}
    assert scenario.leftovers(tmp_path) == [], "per-job files left on the device"
    assert not any((tmp_path / "agent" / "scratch").iterdir())
