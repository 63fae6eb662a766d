"""Request and response bodies of the REST API (pydantic v2).

Requests forbid unknown fields, so a typo (``"run": 20``) is a 422 naming the field instead of a default
silently taken. Responses mirror what the store's queries return.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

MAX_PAGE = 1000  # rows per page of /v1/measurements


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- health, devices, agents -------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"]
    version: str
    db_backend: str = Field(description="sqlite or postgresql")
    schema_revision: str | None = Field(description="the store's Alembic revision")
    agents_online: int
    queue_depth: int = Field(description="jobs queued or leased, all devices")
    grpc_address: str


class DeviceOut(BaseModel):
    name: str
    device_class: str
    hardware: str
    precision: str
    runtime: str | None
    host: dict[str, Any] | None
    created_at: datetime
    measurements: int = Field(description="measurements stored for this device")


class DeviceDetail(DeviceOut):
    measurements_by_provenance: dict[str, int]
    agents: int = Field(description="agents registered for this device")


class AgentOut(BaseModel):
    id: str
    device: str
    hostname: str
    capabilities: list[str]
    backend_check: dict[str, Any] | None
    registered_at: datetime
    last_heartbeat: datetime
    state: Literal["online", "offline"] = Field(description="offline: silent for longer than a lease")
    leased_jobs: int


class TokenCreate(_Request):
    note: str = Field(default="", max_length=256, description="what the token is for (a lab machine...)")


class TokenOut(BaseModel):
    token: str = Field(description="shown this once; the server keeps only its hash")
    note: str


# -- campaigns ----------------------------------------------------------------------------------------
class IndicesModels(_Request):
    indices: list[int] = Field(min_length=1, description="NB201 indices (official order)")


class ArchStrsModels(_Request):
    arch_strs: list[str] = Field(min_length=1, description="NB201 arch strings")


class RandomModels(_Request):
    random: int = Field(ge=1, description="how many distinct valid cells to draw")
    seed: int | None = Field(default=None, description="draw seed; chosen and reported back when omitted")


MODELS_HELP = 'models must be "all", "unmeasured", {"indices": [...]}, {"arch_strs": [...]} or {"random": N, "seed": S}'


def _models_tag(value: Any) -> str | None:
    """Which form of ``models`` a request uses (None: none of them, answered with MODELS_HELP)."""
    if isinstance(value, str):
        return value if value in ("all", "unmeasured") else None
    if isinstance(value, dict):
        keys = set(value)
        for tag in ("indices", "arch_strs", "random"):
            if tag in keys:
                return tag
        return None
    if isinstance(value, IndicesModels | ArchStrsModels | RandomModels):
        return {IndicesModels: "indices", ArchStrsModels: "arch_strs", RandomModels: "random"}[type(value)]
    return None


ModelsSpec = Annotated[
    Annotated[Literal["all"], Tag("all")]
    | Annotated[Literal["unmeasured"], Tag("unmeasured")]
    | Annotated[IndicesModels, Tag("indices")]
    | Annotated[ArchStrsModels, Tag("arch_strs")]
    | Annotated[RandomModels, Tag("random")],
    Discriminator(_models_tag, custom_error_type="models_form", custom_error_message=MODELS_HELP),
]


class ProtocolIn(_Request):
    """The timing protocol (paper §6); what is left out takes the device class's default."""

    runs: int | None = Field(default=None, ge=1, description="timed runs (default 1000, 10 on phones)")
    warmup: int | None = Field(default=None, ge=0, description="untimed runs first (default 10)")
    group_size: int | None = Field(default=None, ge=1, description="runs per group (default 10)")
    pause_s: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="sleep between groups")

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class CampaignCreate(_Request):
    device: str = Field(description="device name, e.g. local or desktop_cpu_core_i7_7820x_fp32")
    models: ModelsSpec
    runtime: str = Field(default="litert", description="tf, litert, ... (agents must offer it)")
    precision: str | None = Field(default=None, description="default: the device's precision, else fp32")
    protocol: ProtocolIn = Field(default_factory=ProtocolIn)
    priority: int = Field(default=0, description="higher runs first; FIFO within a priority")
    name: str | None = Field(default=None, max_length=256)
    dedupe: bool = Field(default=True, description="time one cell per canonical graph (equivalent cells)")
    max_attempts: int | None = Field(default=None, ge=1, le=100, description="default: the server's setting")


class CampaignOut(BaseModel):
    """A campaign and its progress (the store's ``campaign_progress``)."""

    campaign_id: int
    name: str | None
    device: str
    runtime: str
    precision: str
    protocol: dict[str, Any]
    priority: int
    state: str
    total: int = Field(description="jobs")
    counts: dict[str, int] = Field(description="jobs per state: queued, leased, done, failed, cancelled")
    done_fraction: float
    finished_fraction: float = Field(description="done, failed or cancelled")
    mean_job_s: float | None
    active_agents: int
    eta_s: float | None = Field(description="seconds left at the recent pace; null before any job ends")
    created_at: datetime
    finished_at: datetime | None


class CampaignCreated(CampaignOut):
    requested: int = Field(description="architectures the models spec named (jobs may be fewer: dedupe)")
    seed: int | None = Field(default=None, description="the draw's seed, for random models")


class CampaignList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[CampaignOut]


class CampaignCancelled(BaseModel):
    campaign_id: int
    cancelled_jobs: int
    state: str


# -- measurements ---------------------------------------------------------------------------------------
class MeasurementOut(BaseModel):
    id: int
    device: str
    arch_index: int
    arch_str: str
    latency_ms: float
    stats: dict[str, Any] | None
    raw_ms: list[float] | None = Field(default=None, description="only with raw=true")
    runtime: str | None
    precision: str | None
    versions: dict[str, Any] | None
    agent_id: str | None
    job_id: int | None
    campaign_id: int | None
    provenance: str
    measured_at: datetime


class MeasurementPage(BaseModel):
    total: int = Field(description="rows matching the filters")
    limit: int
    offset: int
    items: list[MeasurementOut]


# -- releases ---------------------------------------------------------------------------------------------
class ImportOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # the store's import summary, passed through
