"""Running the external tools hardware backends drive: PATH lookup, timeouts, output capture, failure
classification, and the two ways to reach a device: SSH (a Jetson board) and adb (a phone).

Every tool runs in its own process group, so a timeout kills the tool *and* what it started (``ssh``
leaves nothing running on this side; a hung ``trtexec`` behind ``ssh`` dies with its connection). A
failure becomes a :class:`BackendError` carrying the tool's own last words (stderr, then stdout), with
the class the caller chose for that step (convert / compile / unsupported / runtime); a timeout is
always ``timeout``. ``classify`` patterns let a step refine the class from the tool's text (e.g. an
"unsupported op" message of a converter is ``unsupported``, not ``convert``).

Backend options are plain TOML values; :class:`Options` reads them with clear errors naming the key.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eagle_agent.backends import BackendError, ErrorClass

TAIL_CHARS = 2000  # how much of a tool's output goes into a failure message
TIMEOUT_RC = -9999  # ToolResult.returncode of a tool killed at its timeout (never returned: it raises)


# -- options ------------------------------------------------------------------------------------------
class Options:
    """Typed access to a backend's options; every key must be one the backend knows."""

    def __init__(self, backend: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
        self.backend = backend
        self.values = dict(options)
        known = sorted(known)
        unknown = sorted(set(self.values) - set(known))
        if unknown:
            raise ValueError(
                f"backend {backend}: unknown option(s) {', '.join(unknown)}; it takes {', '.join(known) or 'none'}"
            )

    def _bad(self, key: str, what: str) -> ValueError:
        return ValueError(f"backend {self.backend}: option {key} must be {what}, got {self.values[key]!r}")

    def text(self, key: str, default: str = "", choices: Sequence[str] | None = None) -> str:
        value = self.values.get(key, default)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        if choices is not None and value not in choices:
            raise self._bad(key, f"one of {', '.join(choices)}")
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._bad(key, f"an integer >= {minimum}")
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self._bad(key, "a number of seconds > 0")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value


# -- finding tools ------------------------------------------------------------------------------------
def find_tool(name: str, configured: str = "", extra_dirs: Sequence[str] = ()) -> str | None:
    """The executable for ``name``: the configured path or name if given, else PATH, else ``extra_dirs``."""
    if configured:
        if os.sep in configured:
            return configured if os.access(configured, os.X_OK) and Path(configured).is_file() else None
        return shutil.which(configured)
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_tool(name: str, configured: str = "", extra_dirs: Sequence[str] = (), hint: str = "") -> str:
    """Like :func:`find_tool`, but a missing tool is a ``runtime`` failure naming what to do."""
    found = find_tool(name, configured, extra_dirs)
    if found is None:
        where = f"at {configured}" if configured else "on PATH"
        raise BackendError(ErrorClass.RUNTIME, f"{name} not found {where}{'; ' + hint if hint else ''}")
    return found


# -- running tools ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def output(self) -> str:
        return self.stdout + ("\n" + self.stderr if self.stderr else "")

    def tail(self, limit: int = TAIL_CHARS) -> str:
        return tail(self.stderr.strip() or self.stdout.strip() or "(no output)", limit)


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The end of ``text`` (what a tool says last is usually why it failed)."""
    text = text.strip()
    return text if len(text) <= limit else "... " + text[-(limit - 4) :]


@dataclass(frozen=True)
class Classifier:
    """Refine a failed step's class from the tool's output: the first matching pattern wins."""

    rules: tuple[tuple[re.Pattern[str], ErrorClass], ...] = ()

    @classmethod
    def of(cls, *rules: tuple[str, ErrorClass]) -> Classifier:
        return cls(tuple((re.compile(p, re.IGNORECASE), c) for p, c in rules))

    def classify(self, text: str, default: ErrorClass) -> ErrorClass:
        for pattern, error_class in self.rules:
            if pattern.search(text):
                return error_class
        return default


def _tool_name(argv: Sequence[str]) -> str:
    return Path(argv[0]).name


def _describe_rc(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    if 128 < rc < 128 + 65:  # a shell (or ssh) reports a command killed by signal N as 128 + N
        try:
            return f"exit code {rc}: killed by signal {signal.Signals(rc - 128).name}"
        except ValueError:
            pass
    return f"exit code {rc}"


def run_tool(
    argv: Sequence[str],
    *,
    timeout_s: float,
    error_class: ErrorClass,
    what: str = "",
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    classify: Classifier | None = None,
    check: bool = True,
) -> ToolResult:
    """Run ``argv`` to completion within ``timeout_s``; raise a classified :class:`BackendError` if it
    fails (``check``), hangs, or cannot be started. ``what`` names the step in messages."""
    argv = [str(a) for a in argv]
    name = _tool_name(argv)
    step = f"{what} ({name})" if what else name
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
    except FileNotFoundError:
        raise BackendError(ErrorClass.RUNTIME, f"{step}: {argv[0]} not found") from None
    except PermissionError as exc:
        raise BackendError(ErrorClass.RUNTIME, f"{step}: cannot run {argv[0]}: {exc}") from None
    try:
        stdout, stderr = proc.communicate(input_text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        said = tail((stderr or "").strip() or (stdout or "").strip() or "(no output)", 500)
        raise BackendError(
            ErrorClass.TIMEOUT, f"{step} did not finish within {timeout_s:g} s and was killed; last output: {said}"
        ) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    result = ToolResult(tuple(argv), proc.returncode, stdout or "", stderr or "", time.monotonic() - start)
    if check and result.returncode != 0:
        error = error_class
        if classify is not None:
            error = classify.classify(result.output, error_class)
        raise BackendError(error, f"{step} failed ({_describe_rc(result.returncode)}): {result.tail()}")
    return result


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


# -- commands on a device ---------------------------------------------------------------------------------
def with_device_timeout(command: str, seconds: float) -> str:
    """``command`` run under ``timeout -s KILL`` on the device when it has one (GNU coreutils, Android's
    toybox): killing the local ``ssh`` / ``adb`` client does not stop what it started on the device."""
    limit = max(1, int(seconds + 0.999))
    quoted = shlex.quote(command)
    return (
        f"if command -v timeout >/dev/null 2>&1; then timeout -s KILL {limit} sh -c {quoted}; else sh -c {quoted}; fi"
    )


def finish_command(
    result: ToolResult,
    *,
    step: str,
    where: str,
    error_class: ErrorClass,
    classify: Classifier | None,
    check: bool,
    device_timeout_s: float | None,
) -> ToolResult:
    """Turn a finished device command into a result or a classified failure: a command the device's
    ``timeout`` killed (status 124 or 137 once its time is up) is ``timeout``; 137 earlier is a kill
    by someone else (the out-of-memory killer, say) and stays a failure of the step's class."""
    rc = result.returncode
    if device_timeout_s is not None and rc in (124, 137) and result.elapsed_s >= 0.9 * device_timeout_s:
        raise BackendError(
            ErrorClass.TIMEOUT,
            f"{step} ran past {device_timeout_s:g} s on {where} and was killed there; last output: "
            f"{tail(result.output.strip() or '(no output)', 500)}",
        )
    if check and rc != 0:
        error = classify.classify(result.output, error_class) if classify else error_class
        raise BackendError(error, f"{step} on {where} failed ({_describe_rc(rc)}): {result.tail()}")
    return result


# -- where commands run: this machine, or a board over SSH ----------------------------------------------
class Shell:
    """Run shell commands and move files on a target (this machine or a remote one)."""

    description = "this machine"

    def run(
        self,
        command: str,
        *,
        timeout_s: float,
        error_class: ErrorClass,
        what: str = "",
        classify: Classifier | None = None,
        check: bool = True,
        device_timeout_s: float | None = None,
    ) -> ToolResult:
        """Run ``command`` with /bin/sh on the target. ``device_timeout_s`` also limits it on the target
        (give ``timeout_s`` some slack beyond it: that one is the local backstop)."""
        if device_timeout_s is not None:
            command = with_device_timeout(command, device_timeout_s)
        result = self._execute(command, timeout_s, what)
        return finish_command(
            result,
            step=what or self._default_step(command),
            where=self.description,
            error_class=error_class,
            classify=classify,
            check=check,
            device_timeout_s=device_timeout_s,
        )

    def _default_step(self, command: str) -> str:
        return command.split()[0]

    def _execute(self, command: str, timeout_s: float, what: str) -> ToolResult:
        """Run ``command`` on the target; the result carries the command's own exit status."""
        return run_tool(
            ["/bin/sh", "-c", command], timeout_s=timeout_s, error_class=ErrorClass.RUNTIME, what=what, check=False
        )

    def push(self, local: Path, remote: str, *, timeout_s: float) -> None:
        try:
            shutil.copyfile(local, remote)
        except OSError as exc:
            raise BackendError(ErrorClass.RUNTIME, f"copying {local} to {remote} failed: {exc}") from exc

    def pull(self, remote: str, local: Path, *, timeout_s: float) -> None:
        try:
            shutil.copyfile(remote, local)
        except OSError as exc:
            raise BackendError(ErrorClass.RUNTIME, f"copying {remote} to {local} failed: {exc}") from exc

    def make_temp_dir(self, parent: str, prefix: str, *, timeout_s: float) -> str:
        """A new private folder under ``parent`` on the target; its path."""
        template = shlex.quote(f"{parent.rstrip('/')}/{prefix}XXXXXX")
        result = self.run(
            f"mkdir -p {shlex.quote(parent)} && mktemp -d {template}",
            timeout_s=timeout_s,
            error_class=ErrorClass.RUNTIME,
            what="making a work folder",
        )
        path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if not path.startswith("/"):
            raise BackendError(ErrorClass.RUNTIME, f"mktemp on {self.description} printed {result.stdout!r}")
        return path

    def remove_tree(self, path: str, *, timeout_s: float) -> None:
        if not path.startswith("/") or path.rstrip("/").count("/") < 2:
            raise ValueError(f"refusing to remove {path!r}: not a work folder")
        self.run(
            f"rm -rf {shlex.quote(path)}",
            timeout_s=timeout_s,
            error_class=ErrorClass.RUNTIME,
            what="removing the work folder",
        )


@dataclass
class SshShell(Shell):
    """A board reached with OpenSSH (``ssh``/``scp``, key authentication, no passwords: BatchMode).

    ssh exits 255 for its own errors (host unreachable, key refused); that is a ``runtime`` failure
    saying the board cannot be reached, whatever class the step had.
    """

    host: str
    user: str = ""
    port: int = 0
    key: str = ""
    ssh: str = "ssh"
    scp: str = "scp"
    connect_timeout_s: int = 10
    extra_options: tuple[str, ...] = field(default=())

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"{self.destination} (ssh)"

    def _options(self, port_flag: str) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}"]
        for option in self.extra_options:
            opts += ["-o", option]
        if self.port:
            opts += [port_flag, str(self.port)]
        if self.key:
            opts += ["-i", self.key]
        return opts

    def ssh_argv(self, command: str) -> list[str]:
        return [self.ssh, *self._options("-p"), self.destination, command]

    def _execute(self, command: str, timeout_s: float, what: str) -> ToolResult:
        result = run_tool(
            self.ssh_argv(command), timeout_s=timeout_s, error_class=ErrorClass.RUNTIME, what=what, check=False
        )
        if result.returncode == 255:
            raise BackendError(ErrorClass.RUNTIME, f"ssh to {self.destination} failed: {result.tail()}")
        return result

    def push(self, local: Path, remote: str, *, timeout_s: float) -> None:
        run_tool(
            [self.scp, "-q", *self._options("-P"), str(local), f"{self.destination}:{remote}"],
            timeout_s=timeout_s,
            error_class=ErrorClass.RUNTIME,
            what=f"copying {Path(local).name} to the board",
        )

    def pull(self, remote: str, local: Path, *, timeout_s: float) -> None:
        run_tool(
            [self.scp, "-q", *self._options("-P"), f"{self.destination}:{remote}", str(local)],
            timeout_s=timeout_s,
            error_class=ErrorClass.RUNTIME,
            what=f"copying {remote} from the board",
        )


# -- adb ----------------------------------------------------------------------------------------------
_ADB_RC = "__eagle_rc="


def parse_adb_devices(text: str) -> dict[str, str]:
    """``adb devices`` output -> {serial: state} (states: device, offline, unauthorized, ...).

    The format: a "List of devices attached" line, then one ``<serial>\\t<state>`` line per device
    (``adb devices -l`` appends ``key:value`` details, ignored here); daemon start messages
    ("* daemon not running; starting now ...") are skipped.
    """
    devices: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.lower().startswith("list of devices"):
            continue
        parts = line.split()
        if len(parts) >= 2:
            devices[parts[0]] = parts[1]
    return devices


@dataclass
class Adb(Shell):
    """One Android device through ``adb`` (``-s serial`` on every call when a serial is configured); a
    :class:`Shell` whose commands run in ``adb shell`` (:meth:`shell` is :meth:`Shell.run`).

    ``adb shell`` of old devices does not pass the remote exit status back, so each command is followed
    by an ``echo`` of ``$?`` that is read from the output.
    """

    adb: str
    serial: str = ""
    timeout_s: float = 60.0

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"the device {self.serial}".rstrip()

    def _argv(self, *args: str) -> list[str]:
        return [self.adb, *(["-s", self.serial] if self.serial else []), *args]

    def devices(self) -> dict[str, str]:
        result = run_tool(
            [self.adb, "devices"], timeout_s=self.timeout_s, error_class=ErrorClass.RUNTIME, what="listing devices"
        )
        return parse_adb_devices(result.stdout)

    def device_problem(self) -> str:
        """ "" when the configured device is online; else what is wrong, for a person."""
        try:
            devices = self.devices()
        except BackendError as exc:
            return exc.message
        listed = ", ".join(f"{s} ({st})" for s, st in devices.items()) or "none"
        if self.serial:
            if self.serial not in devices:
                return f"device {self.serial} is not on adb (adb devices lists: {listed})"
            serial, state = self.serial, devices[self.serial]
        else:
            if len(devices) != 1:
                return f"set the option serial: adb sees {len(devices)} device(s): {listed}"
            serial, state = next(iter(devices.items()))
        if state == "device":
            return ""
        if state == "unauthorized":
            return f"device {serial} is unauthorized: accept the USB debugging prompt on the phone"
        return f"device {serial} is {state}: reconnect it or restart the adb server"

    shell = Shell.run

    def _default_step(self, command: str) -> str:
        return "adb shell"

    def _execute(self, command: str, timeout_s: float, what: str) -> ToolResult:
        result = run_tool(
            self._argv("shell", f"( {command} ); echo {_ADB_RC}$?"),
            timeout_s=timeout_s,
            error_class=ErrorClass.RUNTIME,
            what=what or "adb shell",
            check=False,
        )
        if result.returncode != 0:  # adb itself failed: no device, offline, unauthorized...
            raise BackendError(
                ErrorClass.RUNTIME, f"adb shell on {self.serial or 'the device'} failed: {result.tail()}"
            )
        match = re.search(rf"{_ADB_RC}(\d+)\s*$", result.stdout)
        if match is None:
            raise BackendError(ErrorClass.RUNTIME, f"adb shell gave no exit status (connection lost?): {result.tail()}")
        return ToolResult(
            result.argv, int(match.group(1)), result.stdout[: match.start()], result.stderr, result.elapsed_s
        )

    def push(self, local: Path, remote: str, *, timeout_s: float | None = None) -> None:
        run_tool(
            self._argv("push", str(local), remote),
            timeout_s=timeout_s or self.timeout_s,
            error_class=ErrorClass.RUNTIME,
            what=f"pushing {Path(local).name} to the device",
        )

    def pull(self, remote: str, local: Path, *, timeout_s: float | None = None) -> None:
        run_tool(
            self._argv("pull", remote, str(local)),
            timeout_s=timeout_s or self.timeout_s,
            error_class=ErrorClass.RUNTIME,
            what=f"pulling {remote} from the device",
        )


# -- NVIDIA GPUs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NvidiaGpu:
    index: int
    name: str
    driver: str
    memory_mib: str


def nvidia_gpus(nvidia_smi: str = "nvidia-smi", timeout_s: float = 20.0) -> list[NvidiaGpu]:
    """The GPUs ``nvidia-smi`` lists (``--query-gpu=index,name,driver_version,memory.total
    --format=csv,noheader,nounits``); a :class:`BackendError` when it is missing or fails."""
    tool = require_tool(
        "nvidia-smi", "" if nvidia_smi == "nvidia-smi" else nvidia_smi, hint="install the NVIDIA driver"
    )
    result = run_tool(
        [tool, "--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader,nounits"],
        timeout_s=timeout_s,
        error_class=ErrorClass.RUNTIME,
        what="listing GPUs",
    )
    gpus = []
    for row in csv.reader(io.StringIO(result.stdout)):
        cells = [c.strip() for c in row]
        if len(cells) >= 4 and cells[0].isdigit():
            gpus.append(NvidiaGpu(int(cells[0]), cells[1], cells[2], cells[3]))
    return gpus
