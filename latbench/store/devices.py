"""Device rows: names shaped like the LatBench columns, and the facts of the 13 shipped devices.

A device name is lower-case words joined by ``_``: ``<class>_<kind>_<hardware words>_<precision>``,
e.g. ``desktop_gpu_gtx_1080ti_fp32``; the LatBench CSV column is the name plus ``_ms``. ``local`` (the
device of ``eagle serve --local-agent``) is the one name without that shape.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from latbench.data import DeviceInfo, load_latency
from latbench.store.models import Device

DEVICE_NAME_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int16", "uint8", "mixed")
MOBILE_RUNS, DEFAULT_RUNS = 10, 1000  # paper §6


class UnknownDevice(ValueError):
    """A device name the store has no row for."""


def check_device_name(name: str) -> str:
    if not isinstance(name, str) or not DEVICE_NAME_RE.match(name) or len(name) > 128:
        raise ValueError(
            f"device name {name!r} must be lower-case words joined by '_' "
            "(like desktop_cpu_core_i7_7820x_fp32), at most 128 characters"
        )
    return name


def describe_name(name: str) -> tuple[str, str]:
    """``(device_class, precision)`` read off a device name (empty strings where it says nothing)."""
    words = check_device_name(name).split("_")
    device_class = "_".join(words[:2]) if len(words) >= 3 else words[0]
    precision = words[-1] if words[-1] in PRECISIONS else ""
    return device_class, precision


def default_runs(device_class: str) -> int:
    """Timed runs of the paper's protocol: 10 on phones, 1000 on desktop and embedded devices."""
    return MOBILE_RUNS if device_class.startswith("mobile") else DEFAULT_RUNS


def get_device(session: Session, name: str) -> Device | None:
    return session.scalar(select(Device).where(Device.name == name))


def require_device(session: Session, name: str) -> Device:
    device = get_device(session, name)
    if device is None:
        known = list(session.scalars(select(Device.name).order_by(Device.name)))
        hint = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "") if known else "none yet"
        raise UnknownDevice(f"unknown device {name!r}; known devices: {hint}")
    return device


def ensure_device(
    session: Session,
    name: str,
    *,
    hardware: str = "",
    runtime: str | None = None,
    host: dict[str, Any] | None = None,
    device_class: str | None = None,
    precision: str | None = None,
) -> Device:
    """The device named ``name``, created (not committed) from the given facts if it is new.

    An existing device keeps its facts, except that empty ones are filled in from the arguments.
    """
    guessed_class, guessed_precision = describe_name(name)
    device = get_device(session, name)
    if device is None:
        device = Device(
            name=name,
            device_class=device_class or guessed_class,
            hardware=hardware,
            precision=precision or guessed_precision,
            runtime=runtime,
            host=host,
        )
        session.add(device)
        session.flush()
        return device
    if not device.hardware and hardware:
        device.hardware = hardware
    if device.runtime is None and runtime:
        device.runtime = runtime
    if device.host is None and host:
        device.host = host
    return device


# -- the LatBench 2020 devices ------------------------------------------------------------------------
def latbench_2020_devices() -> list[DeviceInfo]:
    """The 13 shipped LatBench devices, with the hardware facts of ``latbench.data`` (one source of truth)."""
    return load_latency().devices()
