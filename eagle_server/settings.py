"""Server settings: one pydantic-settings class, read from ``EAGLE_*`` environment variables or a file.

The settings file (``EAGLE_SETTINGS_FILE``, default ``eagle.env`` in the working directory if present) uses the
same ``EAGLE_NAME=value`` lines as the environment; the environment wins over the file.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _settings_file() -> str | None:
    path = os.environ.get("EAGLE_SETTINGS_FILE", "eagle.env")
    return path if os.path.exists(path) else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EAGLE_", extra="ignore")

    db_url: str | None = Field(default=None, description="SQLAlchemy URL; default: a SQLite file under ./var/eagle.db")
    api_key: str | None = Field(
        default=None,
        description="key for REST writes (header X-API-Key); when unset the server generates one at start",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_address: str = "127.0.0.1:50051"
    grpc_workers: int | None = Field(
        default=None,
        ge=1,
        description="processes serving the agent service on one port (SO_REUSEPORT); default: 1 on SQLite, "
        "one per CPU core (at most 4) on PostgreSQL",
    )
    lease_s: float = Field(default=120.0, gt=0, description="a job's lease; an agent heartbeats to extend it")
    heartbeat_s: float = Field(default=15.0, gt=0)
    group_commit: bool = Field(
        default=True,
        description="PostgreSQL: the agents' leases (and reports) that arrive together run as one statement "
        "(benchmarks/queue_throughput.py: 2x the jobs/s); off: one statement per call",
    )
    max_attempts: int = Field(default=3, ge=1, description="leases a job gets before it fails for good")
    import_latbench_on_start: bool = Field(
        default=True, description="load the shipped LatBench 2020 release into an empty store"
    )
    workdir: str = Field(default="var", description="where the server keeps its files (artifacts, predictors)")
    warm_predictors: bool = Field(
        default=False,
        description="load every ready latency predictor in a background thread at start (else each on first use; "
        "off by default: it costs CPU while a local agent may be timing models)",
    )
    run_trainer: bool = Field(
        default=False, description="start `eagle trainer` beside the server (a child process on the same store)"
    )

    @field_validator("grpc_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"grpc_address must be HOST:PORT, got {value!r}")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings(_env_file=_settings_file())  # type: ignore[call-arg]
