"""``eagle serve --local-agent`` killed with SIGKILL (no chance to stop its children): the local agent, and
every process of its group (its measuring worker), must be gone within seconds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

EAGLE = [sys.executable, "-c", "import sys; from latbench.cli import main; sys.exit(main())"]


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def test_local_agent_dies_with_a_sigkilled_server(tmp_path: Path) -> None:
    env = dict(os.environ, EAGLE_WORKDIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    for name in ("EAGLE_DB_URL", "EAGLE_API_KEY", "EAGLE_SETTINGS_FILE", "EAGLE_GRPC_WORKERS"):
        env.pop(name, None)
    serve = subprocess.Popen(
        [*EAGLE, "serve", "--local-agent", "--no-import", "--port", "0", "--grpc", "127.0.0.1:0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    agent_pid = 0
    try:
        assert serve.stdout is not None
        deadline = time.monotonic() + 180
        for line in serve.stdout:
            found = re.search(r"local agent pid (\d+)", line)
            if found:
                agent_pid = int(found.group(1))
                break
            assert time.monotonic() < deadline, "no banner"
        assert agent_pid, f"eagle serve exited with {serve.poll()} before starting its agent"
        # Let the agent get going (imports, backend check, worker process): the kill must catch it working.
        time.sleep(8.0)
        assert _group(agent_pid), "the local agent should be running"
        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(10)
        deadline = time.monotonic() + 5.0
        while _group(agent_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group(agent_pid), "the local agent (or its worker) outlived the SIGKILLed server"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)
        if agent_pid and _group(agent_pid):
            os.killpg(agent_pid, signal.SIGKILL)
