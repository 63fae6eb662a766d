"""Die with the parent: a child process that must not outlive the process that started it.

``eagle serve`` starts the local agent and its gRPC worker processes with ``EAGLE_PARENT_PID`` set to its
own pid; they call :func:`die_with_parent_from_env` first thing. Two mechanisms, so that a SIGKILLed
server (no chance to stop its children) leaves nothing behind:

* Linux: ``prctl(PR_SET_PDEATHSIG)``, the kernel signals us the moment the parent dies;
* anywhere: a daemon thread that notices our parent pid change (re-parented to init or a subreaper).

A child set up after its parent already died would never get the death signal, hence the pid check
right after the ``prctl``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

PARENT_PID_ENV = "EAGLE_PARENT_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_EVERY_S = 0.5


def _exit_now(sig: int) -> None:
    log.error("the parent process is gone: exiting")
    if sig == signal.SIGKILL:
        os._exit(128 + sig)
    os.kill(os.getpid(), sig)


def set_pdeathsig(sig: int) -> bool:
    """Ask Linux to send ``sig`` when our parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
            return False
    except (OSError, AttributeError) as exc:
        log.warning("prctl is not available: %s", exc)
        return False
    return True


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL, every_s: float = WATCH_EVERY_S) -> None:
    """Exit (by ``sig``) when ``parent_pid`` is no longer our parent; see the module docstring."""
    set_pdeathsig(sig)
    if os.getppid() != parent_pid:  # it died before the prctl: no signal will ever come
        _exit_now(sig)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        _exit_now(sig)

    threading.Thread(target=watch, name="eagle-parent-watch", daemon=True).start()


def die_with_parent_from_env(sig: int = signal.SIGKILL) -> int | None:
    """:func:`die_with_parent` for the pid in ``EAGLE_PARENT_PID``, if set; returns that pid."""
    value = os.environ.pop(PARENT_PID_ENV, "").strip()  # not inherited by our own children
    if not value.isdigit():
        return None
    die_with_parent(int(value), sig)
    return int(value)


def parent_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a child that must die with this process."""
    return {**(os.environ if env is None else env), PARENT_PID_ENV: str(os.getpid())}
