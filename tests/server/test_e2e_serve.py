"""End to end: the real ``eagle serve --local-agent`` process (temp SQLite store, free ports) measures a
3-model campaign submitted with the CLI; the measurements come back through REST and the export CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from latbench.store.releases import format_latency
from tests._helpers import distinct_valid

EAGLE = [sys.executable, "-c", "import sys; from latbench.cli import main; sys.exit(main())"]


def _read_banner(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """stdout up to the local-agent line (the last line of the banner)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "local agent pid" in line:
            return "".join(lines)
    raise AssertionError(f"eagle serve printed no banner (exit {proc.poll()}): {''.join(lines)}")


def _wait_for_agent(base: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        agents = [a for a in httpx.get(f"{base}/v1/agents").json() if a["device"] == "local"]
        if agents and agents[0]["state"] == "online":
            return agents[0]
        time.sleep(1.0)
    raise AssertionError("the local agent did not register")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_serve_with_local_agent_measures_a_campaign(tmp_path: Path) -> None:
    env = dict(os.environ, EAGLE_WORKDIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    for name in ("EAGLE_DB_URL", "EAGLE_API_KEY", "EAGLE_SETTINGS_FILE"):
        env.pop(name, None)
    serve = subprocess.Popen(
        [*EAGLE, "serve", "--local-agent", "--port", "0", "--grpc", "127.0.0.1:0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = _read_banner(serve, timeout_s=180)
        base = re.search(r"REST\s+(http://\S+)/v1", banner).group(1)  # type: ignore[union-attr]
        agent_pid = int(re.search(r"local agent pid (\d+)", banner).group(1))  # type: ignore[union-attr]
        key = (tmp_path / "var" / "api_key").read_text().strip()
        assert key in banner
        assert "sqlite:///" in banner and "imported LatBench 2020" in banner

        health = httpx.get(f"{base}/v1/health").json()
        assert health["db_backend"] == "sqlite" and health["schema_revision"]
        assert len(httpx.get(f"{base}/v1/devices").json()) == 14  # 13 LatBench 2020 devices + local
        agent = _wait_for_agent(base, timeout_s=180)
        assert agent["capabilities"] == ["litert:fp32"] and agent["backend_check"]["ok"]

        indices = distinct_valid(3, skip=100)
        client_env = dict(env, EAGLE_SERVER_URL=base)
        submitted = subprocess.run(
            [
                *EAGLE,
                "campaign",
                "submit",
                "--device",
                "local",
                "--indices",
                ",".join(map(str, indices)),
                "--runs",
                "20",
                "--wait",
                "--json",
            ],
            cwd=tmp_path,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert submitted.returncode == 0, submitted.stderr
        final = json.loads(submitted.stdout)
        assert final["state"] == "done" and final["counts"]["done"] == 3, final

        page = httpx.get(f"{base}/v1/measurements", params={"campaign": final["campaign_id"], "raw": "true"}).json()
        assert page["total"] == 3
        latency = {m["arch_index"]: m["latency_ms"] for m in page["items"]}
        assert set(latency) == set(indices)
        for m in page["items"]:
            assert m["device"] == "local" and m["provenance"] == "eagle" and m["latency_ms"] > 0
            assert len(m["raw_ms"]) == 20 and m["stats"]["runs"] == 20

        out = tmp_path / "local.csv"
        exported = subprocess.run(
            [*EAGLE, "latbench", "export", "--out", str(out), "--devices", "local", "--json"],
            cwd=tmp_path,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert exported.returncode == 0, exported.stderr
        rows = list(csv.reader(io.StringIO(out.read_text())))
        assert rows[0][3] == "local_ms"
        for index in indices:
            assert rows[1 + index][3] == format_latency(latency[index])
        assert json.loads(Path(f"{out}.json").read_text())["counts"]["measured_cells"] == 3
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(90)
        except subprocess.TimeoutExpired:
            serve.kill()
            raise
    assert code == 0, serve.stderr.read() if serve.stderr else ""
    assert not _alive(agent_pid), "the local agent outlived the server"
