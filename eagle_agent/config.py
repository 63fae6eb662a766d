"""Agent settings: command line > environment (``EAGLE_AGENT_*``) > config file (TOML) > defaults.

A config file names the server, token, device, backend and backend options, e.g.::

    server = "eagle.lab:50051"
    token = "eat_..."
    device = "desktop_cpu_core_i7_7820x_fp32"
    runtime = "litert"
    precision = ["fp32", "int8"]
    workdir = "/var/lib/eagle-agent"
    job_timeout_s = 900

    [backend_options]
    num_threads = 4

Unknown keys and wrong types are errors that name the key. The token can come from
``EAGLE_AGENT_TOKEN`` so it does not show in the process list.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from eagle_agent.backends import RUNTIME_DEFAULT_BACKEND
from eagle_agent.detect import check_device_name, default_device_name

ENV_PREFIX = "EAGLE_AGENT_"
DEFAULT_WORKDIR = Path("~/.local/state/eagle-agent")
_SERVER_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class ConfigError(ValueError):
    """A setting a person has to fix; the message names it."""


@dataclass
class AgentConfig:
    server: str
    token: str
    device: str
    runtime: str = "tf"
    precisions: tuple[str, ...] = ("fp32",)
    backend: str = ""  # "" -> the default backend of the runtime
    backend_options: dict[str, Any] = field(default_factory=dict)
    workdir: Path = DEFAULT_WORKDIR
    once: int | None = None  # stop after this many jobs
    job_timeout_s: float = 900.0  # one job, build to last timed run
    startup_timeout_s: float = 600.0  # the worker's framework import
    lease_wait_s: float = 20.0  # long-poll length asked of the server
    rpc_timeout_s: float = 15.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    flush_timeout_s: float = 30.0  # on exit, how long to keep trying to deliver the outbox
    max_jobs_per_child: int = 200
    log_level: str = "info"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def backend_name(self) -> str:
        return self.backend or RUNTIME_DEFAULT_BACKEND.get(self.runtime, "")

    def validate(self) -> None:
        if not self.server:
            raise ConfigError(
                "the server is needed: --server HOST:PORT, EAGLE_AGENT_SERVER or `server` in the config file"
            )
        if not _SERVER_RE.match(self.server):
            raise ConfigError(f"server must be HOST:PORT (e.g. 127.0.0.1:50051), got {self.server!r}")
        if not 0 < int(self.server.rsplit(":", 1)[1]) < 65536:
            raise ConfigError(f"server port must be 1-65535, got {self.server!r}")
        if not self.token:
            raise ConfigError("a token is needed: --token, EAGLE_AGENT_TOKEN or `token` in the config file")
        try:
            check_device_name(self.device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not self.backend_name:
            raise ConfigError(
                f"no backend for runtime {self.runtime!r}; runtimes with a default backend: "
                f"{', '.join(sorted(RUNTIME_DEFAULT_BACKEND))} (or name one with `backend`)"
            )
        if not self.precisions:
            raise ConfigError("at least one precision is needed")
        for name in (
            "job_timeout_s",
            "startup_timeout_s",
            "lease_wait_s",
            "rpc_timeout_s",
            "backoff_initial_s",
            "backoff_max_s",
            "flush_timeout_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
        if self.once is not None and (isinstance(self.once, bool) or not isinstance(self.once, int) or self.once < 1):
            raise ConfigError(f"once must be a positive number of jobs, got {self.once!r}")
        if not isinstance(self.max_jobs_per_child, int) or self.max_jobs_per_child < 1:
            raise ConfigError(f"max_jobs_per_child must be a positive integer, got {self.max_jobs_per_child!r}")
        if not isinstance(self.backend_options, dict):
            raise ConfigError("backend_options must be a table of options")


# Keys a config file may hold, with the type they must have (TOML gives ints for whole numbers).
_FILE_KEYS: dict[str, tuple[type, ...]] = {
    "server": (str,),
    "token": (str,),
    "device": (str,),
    "runtime": (str,),
    "precision": (str, list),
    "backend": (str,),
    "backend_options": (dict,),
    "workdir": (str,),
    "once": (int,),
    "job_timeout_s": (int, float),
    "startup_timeout_s": (int, float),
    "lease_wait_s": (int, float),
    "rpc_timeout_s": (int, float),
    "backoff_initial_s": (int, float),
    "backoff_max_s": (int, float),
    "flush_timeout_s": (int, float),
    "max_jobs_per_child": (int,),
    "log_level": (str,),
}


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML config file, checked key by key."""
    try:
        with Path(path).open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_FILE_KEYS)}")
    for key, value in data.items():
        types = _FILE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"config file {path}: {key} must be {expected}, got {value!r}")
    return data


def _precisions(value: str | list[Any]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    out = tuple(str(p).strip() for p in items if str(p).strip())
    if not out:
        raise ConfigError(f"precision must name at least one precision, got {value!r}")
    return out


def build_config(cli: Mapping[str, Any], env: Mapping[str, str] | None = None) -> AgentConfig:
    """Merge command-line values (None = not given), ``EAGLE_AGENT_*`` variables and the config file."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    config_path = cli.get("config") or env.get(ENV_PREFIX + "CONFIG")
    if config_path:
        merged.update(read_config_file(Path(config_path)))
    for key in ("server", "token", "device", "runtime", "precision", "backend", "workdir"):
        value = env.get(ENV_PREFIX + key.upper())
        if value:
            merged[key] = value
    merged.update({k: v for k, v in cli.items() if v is not None and k != "config"})

    merged.setdefault("server", "")  # validate() says what is missing
    merged.setdefault("token", "")
    precisions = _precisions(merged.pop("precision", "fp32"))
    if "device" not in merged:
        merged["device"] = default_device_name(precisions[0])
    merged["workdir"] = Path(str(merged.get("workdir", DEFAULT_WORKDIR))).expanduser()
    known = {f.name for f in fields(AgentConfig)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    return AgentConfig(precisions=precisions, **merged)
