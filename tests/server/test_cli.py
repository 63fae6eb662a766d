"""The REST-client commands (``eagle campaign|agents|latbench``) against a real server in this process
(uvicorn + gRPC on free ports, SQLite), and the pieces of ``eagle serve`` that need no agent."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.cli.campaign import wait_for
from eagle_server.client import EagleClient, read_api_key_file
from eagle_server.serve import EagleServer, database_url, resolve_api_key
from eagle_server.settings import Settings
from latbench.cli import main
from latbench.store import queue
from latbench.store.db import session_factory
from latbench.store.devices import ensure_device
from latbench.store.tokens import create_agent_token, verify_token
from tests._helpers import distinct_valid

from .conftest import CAPS, DESKTOP


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EagleServer]:
    workdir = tmp_path_factory.mktemp("serve")
    settings = Settings(
        workdir=str(workdir), http_port=0, grpc_address="127.0.0.1:0", import_latbench_on_start=False, api_key=None
    )
    server = EagleServer(settings)
    server.start()
    assert server.engine is not None
    with session_factory(server.engine)() as s:
        ensure_device(s, DESKTOP, hardware="cli box")
        s.commit()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def factory(live: EagleServer) -> sessionmaker[Session]:
    assert live.engine is not None
    return session_factory(live.engine)


@pytest.fixture
def env(live: EagleServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI finds the server by EAGLE_SERVER_URL and its key in the server's workdir file."""
    monkeypatch.setenv("EAGLE_SERVER_URL", live.rest_url)
    monkeypatch.setenv("EAGLE_WORKDIR", live.settings.workdir)
    monkeypatch.delenv("EAGLE_API_KEY", raising=False)


def eagle(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run ``eagle argv --json``; returns (exit code, parsed stdout, stderr)."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_api_key_is_generated_once_kept_private_and_configured_one_wins(tmp_path: Path) -> None:
    settings = Settings(workdir=str(tmp_path / "w"), api_key=None)
    key, source = resolve_api_key(settings)
    path = tmp_path / "w" / "api_key"
    assert source.startswith("generated") and read_api_key_file(tmp_path / "w") == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert resolve_api_key(settings) == (key, f"from {path}")
    assert resolve_api_key(Settings(workdir=str(tmp_path / "w"), api_key="mine")) == ("mine", "configured")


def test_default_database_is_sqlite_in_the_workdir(tmp_path: Path) -> None:
    assert database_url(Settings(workdir=str(tmp_path), db_url=None)) == f"sqlite:///{tmp_path / 'eagle.db'}"
    assert database_url(Settings(db_url="postgresql://x/y")) == "postgresql://x/y"


def test_banner_says_where_it_listens(live: EagleServer) -> None:
    banner = live.banner()
    assert f"{live.rest_url}/v1" in banner and live.grpc_target in banner
    assert live.api_key in banner and "generated" in banner


def test_token_create(env: None, capsys: pytest.CaptureFixture[str], factory: sessionmaker[Session]) -> None:
    code, body, _ = eagle(capsys, "agents", "token", "create", "--note", "cli test")
    assert code == 0 and body["note"] == "cli test"
    with factory() as s:
        assert verify_token(s, body["token"])


def test_campaign_submit_status_list_cancel(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, created, _ = eagle(
        capsys,
        "campaign",
        "submit",
        "--device",
        DESKTOP,
        "--indices",
        ",".join(map(str, distinct_valid(3))),
        "--runs",
        "20",
        "--runtime",
        "tf",
        "--priority",
        "2",
        "--name",
        "cli",
    )
    assert code == 0
    assert (created["total"], created["protocol"]["runs"], created["runtime"], created["priority"]) == (3, 20, "tf", 2)
    cid = created["campaign_id"]
    code, status, _ = eagle(capsys, "campaign", "status", str(cid))
    assert code == 0 and status["counts"]["queued"] == 3 and status["name"] == "cli"
    code, listing, _ = eagle(capsys, "campaign", "list")
    assert code == 0 and cid in [c["campaign_id"] for c in listing["items"]]
    code, cancelled, _ = eagle(capsys, "campaign", "cancel", str(cid))
    assert code == 0 and cancelled == {"campaign_id": cid, "cancelled_jobs": 3, "state": "cancelled"}

    code, drawn, _ = eagle(capsys, "campaign", "submit", "--device", DESKTOP, "--random", "4", "--seed", "7")
    assert code == 0 and drawn["seed"] == 7 and drawn["requested"] == 4
    eagle(capsys, "campaign", "cancel", str(drawn["campaign_id"]))


def test_submit_wait_follows_the_campaign_to_the_end(
    env: None, capsys: pytest.CaptureFixture[str], factory: sessionmaker[Session]
) -> None:
    indices = distinct_valid(3, skip=30)
    stop = threading.Event()

    def fake_agent() -> None:  # measures whatever is queued for the device, as a real agent would
        with factory() as s:
            agent = queue.register_agent(s, create_agent_token(s), DESKTOP, "fake", CAPS, None)
            while not stop.is_set():
                job = queue.lease_job(s, agent, DESKTOP, CAPS)
                if job is None:
                    stop.wait(0.1)
                    continue
                queue.report_result(s, job.job_id, job.lease_id, agent, 2.0, {}, [2.0], {}, "litert", "fp32")

    worker = threading.Thread(target=fake_agent, daemon=True)
    worker.start()
    try:
        code, final, _ = eagle(
            capsys, "campaign", "submit", "--device", DESKTOP, "--indices", ",".join(map(str, indices)), "--wait"
        )
    finally:
        stop.set()
        worker.join(10)
    assert code == 0
    assert final["state"] == "done" and final["counts"]["done"] == 3 and final["eta_s"] == 0.0
    code, agents, _ = eagle(capsys, "agents", "list")
    assert code == 0 and "fake" in [a["hostname"] for a in agents["agents"]]


def test_export_and_import_files(env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "release.csv"
    code, summary, _ = eagle(capsys, "latbench", "export", "--out", str(out), "--devices", DESKTOP)
    assert code == 0 and summary["devices"] == [DESKTOP]
    sidecar = json.loads((tmp_path / "release.csv.json").read_text())
    assert sidecar["version"] == summary["version"] and sidecar["csv"]["sha256"] == summary["sha256"]
    assert summary["measured_cells"] >= 3  # the --wait test's campaign
    assert not (tmp_path / "release.csv.part").exists()

    code, imported, _ = eagle(capsys, "latbench", "import", str(out))
    assert code == 0 and imported["inserted"] == 0 and imported["provenance"] == f"release {sidecar['version']}"

    lines = out.read_text().splitlines()
    index = distinct_valid(1, skip=40)[0]
    lines[1 + index] += "12.5"  # a new measurement for an empty cell
    changed = tmp_path / "changed.csv"
    changed.write_text("\n".join(lines) + "\n")
    side = str(tmp_path / "release.csv.json")  # says which cells were filled, not measured
    code, imported, _ = eagle(capsys, "latbench", "import", str(changed), "--sidecar", side, "--provenance", "hand")
    assert code == 0 and imported["inserted"] == 1 and imported["skipped_filled"] == sidecar["counts"]["filled_cells"]


def test_errors_are_one_line_with_the_servers_reason(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, body, _ = eagle(capsys, "campaign", "submit", "--device", "desktop_cpu_nope_fp32", "--all")
    assert code == 2 and "unknown device 'desktop_cpu_nope_fp32'" in body["error"] and "(404)" in body["error"]
    code, body, _ = eagle(capsys, "campaign", "submit", "--device", DESKTOP, "--indices", "1,x")
    assert code == 2 and "'x' is not an integer" in body["error"]
    code, body, _ = eagle(capsys, "campaign", "status", "424242")
    assert code == 2 and "no campaign 424242" in body["error"]
    code, body, _ = eagle(capsys, "latbench", "import", str(tmp_path / "missing.csv"))
    assert code == 2 and "no such file" in body["error"]

    monkeypatch.setenv("EAGLE_WORKDIR", str(tmp_path))  # no key file there, no EAGLE_API_KEY
    code, body, _ = eagle(capsys, "agents", "token", "create")
    assert code == 2 and "needs its API key" in body["error"]
    code, body, _ = eagle(capsys, "agents", "token", "create", "--api-key", "wrong")
    assert code == 2 and "wrong API key" in body["error"] and "(403)" in body["error"]

    code, body, _ = eagle(capsys, "agents", "list", "--server", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the Eagle server at http://127.0.0.1:9" in body["error"]


def test_wait_for_polls_until_the_campaign_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    states = iter(["queued", "running", "running", "done"])

    class Fake:
        calls = 0

        def campaign(self, cid: int) -> dict[str, Any]:
            Fake.calls += 1
            state = next(states)
            done = 2 if state == "done" else Fake.calls - 1
            counts = {"queued": 2 - done, "leased": 0, "done": done, "failed": 0, "cancelled": 0}
            return {"campaign_id": cid, "state": state, "total": 2, "counts": counts, "eta_s": 1.0}

    final = wait_for(Fake(), 5, show_bar=True, poll_s=0.0)
    assert final["state"] == "done" and Fake.calls == 4


def test_client_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAGLE_API_KEY", "from-env")
    client = EagleClient("127.0.0.1:1")
    assert client.base_url == "http://127.0.0.1:1"
    assert client._write_headers() == {"X-API-Key": "from-env"}
    client.close()


def test_server_starts_on_either_backend_and_imports_latbench_once(db_url: str, tmp_path: Path) -> None:
    settings = Settings(
        db_url=db_url,
        workdir=str(tmp_path),
        http_port=0,
        grpc_address="127.0.0.1:0",
        api_key="k",
        import_latbench_on_start=True,
    )
    first = EagleServer(settings)
    first.start()
    try:
        assert first.imported is not None and first.imported["devices"] == 13
        with EagleClient(first.rest_url) as client:
            health = client.health()
            devices = client.devices()
        assert health["db_backend"] == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
        assert len(devices) == 13 and all(d["measurements"] > 15_000 for d in devices)
    finally:
        first.stop()
    second = EagleServer(settings)  # a restart: the store is not empty any more
    second.start()
    try:
        assert second.imported is None
    finally:
        second.stop()


def test_serve_refuses_bad_settings_and_busy_ports(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", "--grpc", "no-port", "--workdir", str(tmp_path)]) == 2
    assert "grpc_address must be HOST:PORT" in capsys.readouterr().err
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(["serve", "--port", str(port), "--grpc", "127.0.0.1:0", "--workdir", str(tmp_path), "--no-import"])
    assert code == 2
    assert f"cannot listen for REST on 127.0.0.1:{port}" in capsys.readouterr().err
