"""The LatBench SQL schema (SQLAlchemy 2 ORM).

Devices are named like the LatBench columns without ``_ms`` (``desktop_gpu_gtx_1080ti_fp32``).
Agents register with a token and lease jobs of one campaign at a time; each finished job leaves exactly
one measurement (``measurements.job_id`` is unique). Measurements imported from a release have no job.

Times are stored in UTC: :class:`UtcDateTime` gives back timezone-aware values on every backend
(SQLite keeps naive text), so Python code can compare them with ``datetime.now(UTC)``.

Predictor versions (``predictor_versions``) are the trainer's registry: one row per trained (or training)
predictor of a device and kind, its artifact files kept in ``predictor_files`` so that a server on another
host can load what a trainer wrote (see ``predictors/registry.py``).

The Alembic migrations in ``latbench/store/migrations`` must create exactly this metadata; a test
diffs them (autogenerate) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LEN = 128  # device names, runtimes, hostnames


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: UtcDateTime,
    }


class CampaignState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


OPEN_JOB_STATES = (JobState.QUEUED.value, JobState.LEASED.value)


class AgentState(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    device_class: Mapped[str] = mapped_column(String(64))  # desktop_cpu, mobile_dsp, ...
    hardware: Mapped[str] = mapped_column(String(256), default="")
    precision: Mapped[str] = mapped_column(String(32))
    runtime: Mapped[str | None] = mapped_column(String(NAME_LEN))
    host: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # OS, CPU, library versions, ...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentToken(Base):
    """An agent credential. Only the SHA-256 of the token is kept; the plaintext is shown once."""

    __tablename__ = "agent_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4 text
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("agent_tokens.id"))
    hostname: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    capabilities: Mapped[list[Any]] = mapped_column(JSON)  # ["litert:fp32", "tf:fp32"]
    backend_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=AgentState.ONLINE.value)

    device: Mapped[Device] = relationship(lazy="joined")


class Architecture(Base):
    """One NB201 cell; ``canonical_key`` is equal for cells whose pruned graphs are isomorphic."""

    __tablename__ = "architectures"

    index: Mapped[int] = mapped_column("arch_index", Integer, primary_key=True, autoincrement=False)
    arch_str: Mapped[str] = mapped_column(String(128), unique=True)
    op_code: Mapped[str] = mapped_column(String(6), unique=True)
    canonical_key: Mapped[str] = mapped_column(String(32), index=True)
    valid: Mapped[bool] = mapped_column(Boolean)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    runtime: Mapped[str] = mapped_column(String(NAME_LEN))
    precision: Mapped[str] = mapped_column(String(32))
    protocol: Mapped[dict[str, Any]] = mapped_column(JSON)  # runs, warmup, group_size, pause_s
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=CampaignState.QUEUED.value, index=True)
    dedupe: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    device: Mapped[Device] = relationship(lazy="joined")


class Job(Base):
    """One model to time.

    ``queue_rank`` is minus the campaign's priority: the lease query walks one ascending index
    (device, state, queue_rank, id), i.e. highest priority first and FIFO within a priority.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        # lease: the next queued job of a device, highest priority first, FIFO (id) within it
        Index("ix_jobs_lease", "device_id", "state", "queue_rank", "id"),
        # expired leases
        Index("ix_jobs_state_lease_expires_at", "state", "lease_expires_at"),
        Index("ix_jobs_campaign_id_state", "campaign_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    arch_index: Mapped[int] = mapped_column(ForeignKey("architectures.arch_index"))
    canonical_key: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    requirement: Mapped[str] = mapped_column(String(NAME_LEN))  # "<runtime>:<precision>"
    queue_rank: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # The lease id stays after the job is requeued or finished, so a repeated report is recognised.
    lease_id: Mapped[str | None] = mapped_column(String(36))
    lease_owner: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    leased_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Measurement(Base):
    __tablename__ = "measurements"
    __table_args__ = (
        Index("ix_measurements_device_id_arch_index", "device_id", "arch_index"),
        Index("ix_measurements_device_id_canonical_key", "device_id", "canonical_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    arch_index: Mapped[int] = mapped_column(ForeignKey("architectures.arch_index"))
    canonical_key: Mapped[str] = mapped_column(String(32))
    latency_ms: Mapped[float] = mapped_column(Float)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw_ms: Mapped[list[Any] | None] = mapped_column(JSON)
    runtime: Mapped[str | None] = mapped_column(String(NAME_LEN))
    precision: Mapped[str | None] = mapped_column(String(32))
    versions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), unique=True)  # one per job
    lease_id: Mapped[str | None] = mapped_column(String(36))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    provenance: Mapped[str] = mapped_column(String(128), index=True)  # "LatBench 2020", "eagle", ...
    measured_at: Mapped[datetime] = mapped_column(default=utcnow)


class Release(Base):
    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sidecar: Mapped[dict[str, Any]] = mapped_column(JSON)


# -- predictor registry (migration 0002) -------------------------------------------------------------------
class PredictorState(enum.StrEnum):
    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"


class PredictorVersion(Base):
    """One predictor of a device and kind; ``version`` counts 1, 2, ... per (device, kind).

    ``device_id`` is null for device-independent kinds (accuracy, binary relation). ``updated_at`` is the
    trainer's heartbeat while ``state`` is training: a row that stops beating belonged to a dead trainer.
    """

    __tablename__ = "predictor_versions"
    __table_args__ = (
        UniqueConstraint("device_id", "kind", "version"),
        # latest_ready: the newest ready version of a device and kind
        Index("ix_predictor_versions_device_id_kind_state", "device_id", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(String(32))  # latency, accuracy, binary, flops, layerwise
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=PredictorState.TRAINING.value)
    method: Mapped[str] = mapped_column(String(32))  # gcn, few-shot, pretrained, ...
    train_count: Mapped[int] = mapped_column(Integer)
    train_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the sorted training indices
    train_indices: Mapped[list[Any] | None] = mapped_column(JSON)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # on held-out data
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # epoch, epochs, losses while training
    artifact: Mapped[str | None] = mapped_column(String(512))  # directory under the workdir, or package:...
    error: Mapped[str | None] = mapped_column(Text)
    measurement_count: Mapped[int] = mapped_column(Integer)  # the device's measurements when training began
    worker: Mapped[str | None] = mapped_column(String(NAME_LEN))  # host:pid of the trainer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    device: Mapped[Device | None] = relationship(lazy="joined")


class PredictorFile(Base):
    """A file of a predictor's artifact (JSON config, Keras weights): what a server on another host loads."""

    __tablename__ = "predictor_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("predictor_versions.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)  # path inside the artifact directory
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
