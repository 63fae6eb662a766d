"""``/v1/predictors``: the predictor registry: versions per device and kind, their state, held-out metrics
and, while training, their progress. ``serving`` marks the version ``/v1/predict`` answers with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from eagle_server.deps import SessionDep
from latbench.store.devices import UnknownDevice
from latbench.store.models import PredictorFile, PredictorState, PredictorVersion
from predictors import registry

router = APIRouter(prefix="/predictors", tags=["predictors"])


class PredictorVersionOut(BaseModel):
    id: int
    device: str | None
    kind: str
    version: int
    state: Literal["training", "ready", "failed"]
    serving: bool = Field(description="the newest ready version of its device and kind: what /v1/predict uses")
    method: str = Field(description="gcn, few-shot or pretrained")
    train_count: int = Field(description="models in the training set")
    train_hash: str = Field(description="SHA-256 of the sorted training indices")
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any] | None = Field(description="on held-out measurements (shares in percent)")
    progress: dict[str, Any] | None = Field(description="phase, epoch / epochs, losses, elapsed_s, eta_s")
    artifact: str | None
    artifact_files: int = Field(description="artifact files kept in the store")
    error: str | None
    measurement_count: int = Field(description="the device's measurements when training began")
    worker: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class PredictorVersionDetail(PredictorVersionOut):
    train_indices: list[int] | None = Field(description="NB201 indices trained on (null: only count and hash kept)")


class PredictorPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[PredictorVersionOut]


def _serving_ids(session: SessionDep) -> set[int]:
    newest = (
        select(PredictorVersion.device_id, PredictorVersion.kind, func.max(PredictorVersion.version).label("v"))
        .where(PredictorVersion.state == PredictorState.READY.value)
        .group_by(PredictorVersion.device_id, PredictorVersion.kind)
        .subquery()
    )
    rows = session.scalars(
        select(PredictorVersion.id).join(
            newest,
            (PredictorVersion.kind == newest.c.kind)
            & (PredictorVersion.version == newest.c.v)
            & (
                (PredictorVersion.device_id == newest.c.device_id)
                | (PredictorVersion.device_id.is_(None) & newest.c.device_id.is_(None))
            ),
        )
    )
    return set(rows)


def _fields(row: PredictorVersion, serving: set[int], files: dict[int, int]) -> dict[str, Any]:
    return {
        "id": row.id,
        "device": registry.device_name(row),
        "kind": row.kind,
        "version": row.version,
        "state": row.state,
        "serving": row.id in serving,
        "method": row.method,
        "train_count": row.train_count,
        "train_hash": row.train_hash,
        "hyperparameters": row.hyperparameters,
        "metrics": row.metrics,
        "progress": row.progress,
        "artifact": row.artifact,
        "artifact_files": files.get(row.id, 0),
        "error": row.error,
        "measurement_count": row.measurement_count,
        "worker": row.worker,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }


def _file_counts(session: SessionDep, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.execute(
        select(PredictorFile.version_id, func.count())
        .where(PredictorFile.version_id.in_(ids))
        .group_by(PredictorFile.version_id)
    )
    return {int(v): int(n) for v, n in rows}


@router.get("", response_model=PredictorPage)
def list_predictors(
    session: SessionDep,
    device: Annotated[str | None, Query(description="device name")] = None,
    kind: Annotated[str | None, Query(description=f"one of {', '.join(registry.KINDS)}")] = None,
    state: Annotated[Literal["training", "ready", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> PredictorPage:
    """Newest first."""
    try:
        total, rows = registry.list_versions(session, device=device, kind=kind, state=state, limit=limit, offset=offset)
    except UnknownDevice as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except registry.RegistryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    serving = _serving_ids(session)
    files = _file_counts(session, [r.id for r in rows])
    items = [PredictorVersionOut(**_fields(r, serving, files)) for r in rows]
    return PredictorPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/{version_id}", response_model=PredictorVersionDetail)
def get_predictor(version_id: int, session: SessionDep) -> PredictorVersionDetail:
    try:
        row = registry.get_version(session, version_id)
    except registry.RegistryError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    fields = _fields(row, _serving_ids(session), _file_counts(session, [row.id]))
    return PredictorVersionDetail(**fields, train_indices=row.train_indices)
