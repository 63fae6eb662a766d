"""Shared by the fake tools: injected faults and a call log. Standard library only.

Faults: ``EAGLE_FAKE_FAULTS`` names a JSON file ``{"tool": ["crash", "hang", ...]}``; each call of a
tool takes (and removes) the first fault listed for it, under a file lock, so a test can make exactly
the first call misbehave. Kinds every tool understands:

* ``crash``: the tool dies of SIGSEGV (as a native tool that crashes does);
* ``hang``: the tool sleeps for an hour (the caller's timeout must kill it);
* anything else is returned to the tool, which decides (``garbage``, ``fail``, ``partial``...).

Calls: when ``EAGLE_FAKE_CALLS`` names a file, every call appends ``{"tool", "argv", "cwd"}`` as a JSON line.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path


def log_call(tool: str) -> None:
    path = os.environ.get("EAGLE_FAKE_CALLS")
    if not path:
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"tool": tool, "argv": sys.argv[1:], "cwd": os.getcwd()}) + "\n")


def take_fault(tool: str) -> str | None:
    path = os.environ.get("EAGLE_FAKE_FAULTS")
    if not path or not Path(path).exists():
        return None
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        faults = json.loads(f.read() or "{}")
        queue = faults.get(tool) or []
        if not queue:
            return None
        fault = queue.pop(0)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(faults))
    return str(fault)


def start(tool: str) -> str | None:
    """Log the call and act on a crash / hang fault; return any other fault for the tool to handle."""
    log_call(tool)
    fault = take_fault(tool)
    if fault == "crash":
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "hang":
        print(f"{tool}: working...", flush=True)
        time.sleep(3600)
    return fault


def die(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def option_values(argv: list[str], with_value: set[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """Split ``argv`` into ``--opt=value`` / ``--opt value`` options, flags and positional arguments."""
    values: dict[str, str] = {}
    flags: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and "=" in arg:
            key, _, value = arg.partition("=")
            values[key] = value
        elif arg in with_value:
            if i + 1 >= len(argv):
                die(f"option {arg} needs a value")
            values[arg] = argv[i + 1]
            i += 1
        elif arg.startswith("-"):
            flags.append(arg)
        else:
            positional.append(arg)
        i += 1
    return values, flags, positional
