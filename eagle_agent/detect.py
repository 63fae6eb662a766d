"""What this machine is: a LatBench-shaped default device name and host facts for Register.

LatBench names devices ``<class>_<hardware>_<precision>`` (``desktop_cpu_core_i7_7820x_fp32``); an agent
that is not told its device name makes one of the same shape from the CPU model in ``/proc/cpuinfo``
(or :mod:`platform` where there is none).
"""

from __future__ import annotations

import os
import platform
import re
import socket
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
LOCAL_DEVICE = "local"  # the device of the agent started by `eagle serve --local-agent`

# Marketing noise removed before slugging: "Intel(R) Core(TM) i7-7820X CPU @ 3.60GHz" -> "core_i7_7820x".
_NOISE = (
    re.compile(r"\((?:r|tm|c)\)", re.IGNORECASE),
    re.compile(r"@.*$"),  # clock speed
    re.compile(r"\b\d+-core\b", re.IGNORECASE),
    re.compile(r"\b(?:cpu|processor|with radeon graphics|radeon graphics)\b", re.IGNORECASE),
)
_VENDORS = ("intel", "amd", "arm")


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU model as the OS names it ("" when unknown)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def slugify(text: str) -> str:
    """Lower-case ``[a-z0-9_]`` slug of a hardware name, without marketing noise and leading vendor."""
    cleaned = text
    for pattern in _NOISE:
        cleaned = pattern.sub(" ", cleaned)
    words = re.findall(r"[a-z0-9]+", cleaned.lower())
    if len(words) > 2 and words[0] in _VENDORS:  # keep it when only one word would remain
        words = words[1:]
    return "_".join(words) or "unknown"


def default_device_name(precision: str = "fp32", cpuinfo: str | None = None) -> str:
    """``desktop_cpu_<cpu model slug>_<precision>``, the LatBench shape."""
    return f"desktop_cpu_{slugify(cpu_model(cpuinfo))}_{precision}"


DEVICE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,126}$")


def check_device_name(name: str) -> str:
    """Validate a device name (LatBench shape: lower-case letters, digits and underscores)."""
    if name == LOCAL_DEVICE or DEVICE_NAME_RE.match(name):
        return name
    raise ValueError(
        f"device name {name!r} must be lower-case letters, digits and underscores, like the LatBench "
        "columns (e.g. desktop_cpu_core_i7_7820x_fp32), or 'local'"
    )


def host_facts() -> dict[str, str]:
    """Free-form facts a person wants to see next to an agent (sent at Register)."""
    return {
        "cpu": cpu_model(),
        "cpus": str(os.cpu_count() or 0),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def hostname() -> str:
    return socket.gethostname()
