"""A child started with ``EAGLE_PARENT_PID`` dies with its parent, even a parent killed with SIGKILL:
with ``prctl(PR_SET_PDEATHSIG)`` (Linux) and, without it, by the parent-pid watcher alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eagle_agent import orphan

# The middle process: starts the child with EAGLE_PARENT_PID set to its own pid, prints the child's pid,
# then sleeps until it is killed. The child arms the mechanism, says so, and sleeps for a minute.
CHILD = """
import sys, time
from eagle_agent import orphan
if sys.argv[1] == "watcher-only":
    orphan.set_pdeathsig = lambda sig: False
print(orphan.die_with_parent_from_env(), flush=True)
time.sleep(60)
"""
PARENT = """
import subprocess, sys, time
from eagle_agent.orphan import parent_env
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], env=parent_env(), stdout=subprocess.PIPE,
                         text=True)
armed = child.stdout.readline().strip()
print(child.pid, armed, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.parametrize("mode", ["pdeathsig", "watcher-only"])
def test_child_dies_within_seconds_of_a_sigkilled_parent(mode: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, mode], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    child_pid = 0
    try:
        assert parent.stdout is not None
        child_pid_text, armed = parent.stdout.readline().split()
        child_pid = int(child_pid_text)
        assert armed == str(parent.pid)  # the child saw its parent's pid in EAGLE_PARENT_PID
        assert _alive(child_pid)
        time.sleep(1.0)
        assert _alive(child_pid), "the child must live while its parent does"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5.0
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child_pid), f"the child outlived its SIGKILLed parent ({mode})"
    finally:
        for pid in (parent.pid, child_pid):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_no_parent_pid_means_no_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(orphan.PARENT_PID_ENV, raising=False)
    assert orphan.die_with_parent_from_env() is None
    assert orphan.parent_env({"A": "1"}) == {"A": "1", orphan.PARENT_PID_ENV: str(os.getpid())}
