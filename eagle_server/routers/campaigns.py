"""``/v1/campaigns``: queue NB201 models for a device, follow their progress, cancel them.

The ``models`` of a campaign are resolved here to NB201 indices, then handed to the store's queue
(``submit_campaign``), which validates them again, dedupes equivalent cells and writes the jobs in one
transaction: a bad request leaves the database as it was.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from eagle_server.deps import ApiKeyDep, SessionDep, SettingsDep
from eagle_server.schemas import (
    ArchStrsModels,
    CampaignCancelled,
    CampaignCreate,
    CampaignCreated,
    CampaignList,
    CampaignOut,
    IndicesModels,
    RandomModels,
)
from latbench import nb201
from latbench.store.archs import architecture_rows
from latbench.store.devices import UnknownDevice, require_device
from latbench.store.models import Campaign, CampaignState, Device, Measurement
from latbench.store.queue import UnknownCampaign, campaign_progress, cancel_campaign, submit_campaign

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def _valid_indices() -> list[int]:
    return [row["index"] for row in architecture_rows() if row["valid"]]


def _unmeasured(session: Session, device: Device, dedupe: bool) -> list[int]:
    """Valid cells with no measurement on the device; with ``dedupe``, also none of an equivalent cell
    (a release fills equivalent cells from one measurement)."""
    of_device = Measurement.device_id == device.id
    measured = set(session.scalars(select(Measurement.arch_index).where(of_device).distinct()))
    keys: set[str] = set()
    if dedupe:
        keys = set(session.scalars(select(Measurement.canonical_key).where(of_device).distinct()))
    rows = architecture_rows()
    return [i for i in _valid_indices() if i not in measured and rows[i]["canonical_key"] not in keys]


def resolve_models(session: Session, spec: Any, device: Device, dedupe: bool) -> tuple[list[int], int | None]:
    """NB201 indices named by a campaign's ``models`` (and the seed of a random draw)."""
    if spec == "all":
        return _valid_indices(), None
    if spec == "unmeasured":
        indices = _unmeasured(session, device, dedupe)
        if not indices:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"every valid NB201 cell already has a measurement on {device.name!r}: nothing to queue",
            )
        return indices, None
    if isinstance(spec, IndicesModels):
        return list(spec.indices), None
    if isinstance(spec, ArchStrsModels):
        indices = []
        for position, text in enumerate(spec.arch_strs):
            try:
                indices.append(nb201.Arch.from_str(text.strip()).index)
            except nb201.ArchError as exc:
                raise _unprocessable(f"models.arch_strs[{position}]: {exc}") from None
        return indices, None
    if isinstance(spec, RandomModels):
        pool = _valid_indices()
        if spec.random > len(pool):
            raise _unprocessable(f"models.random: asked for {spec.random} cells, NB201 has {len(pool)} valid ones")
        seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
        drawn = np.random.default_rng(seed).choice(len(pool), size=spec.random, replace=False)
        return sorted(pool[int(i)] for i in drawn), seed
    raise AssertionError(f"unhandled models spec {spec!r}")  # the schema admits nothing else


def _progress(session: Session, campaign_id: int) -> dict[str, Any]:
    try:
        return campaign_progress(session, campaign_id)
    except UnknownCampaign:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id}") from None


@router.post("", response_model=CampaignCreated, status_code=status.HTTP_201_CREATED)
def create_campaign(_: ApiKeyDep, body: CampaignCreate, session: SessionDep, settings: SettingsDep) -> CampaignCreated:
    try:
        device = require_device(session, body.device)
    except UnknownDevice as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    indices, seed = resolve_models(session, body.models, device, body.dedupe)
    precision = body.precision or device.precision or "fp32"
    session.rollback()  # the queue runs its own write transaction
    try:
        campaign = submit_campaign(
            session,
            device.name,
            indices,
            runtime=body.runtime,
            precision=precision,
            protocol=body.protocol.given(),
            priority=body.priority,
            name=body.name,
            dedupe=body.dedupe,
            max_attempts=body.max_attempts or settings.max_attempts,
        )
    except UnknownDevice as exc:  # deleted meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ValueError as exc:  # runtime / precision / protocol / invalid cells, named by the store
        raise _unprocessable(str(exc)) from None
    return CampaignCreated(**_progress(session, campaign.id), requested=len(indices), seed=seed)


@router.get("", response_model=CampaignList)
def list_campaigns(
    session: SessionDep,
    state: Annotated[CampaignState | None, Query(description="only campaigns in this state")] = None,
    device: Annotated[str | None, Query(description="only campaigns of this device")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CampaignList:
    """Newest first."""
    query = select(Campaign.id)
    if state is not None:
        query = query.where(Campaign.state == state.value)
    if device is not None:
        try:
            dev = require_device(session, device)
        except UnknownDevice as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        query = query.where(Campaign.device_id == dev.id)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    ids = list(session.scalars(query.order_by(Campaign.id.desc()).limit(limit).offset(offset)))
    items = [CampaignOut(**_progress(session, i)) for i in ids]
    return CampaignList(total=int(total or 0), limit=limit, offset=offset, items=items)


@router.get("/{campaign_id}", response_model=CampaignOut)
def get_campaign(campaign_id: int, session: SessionDep) -> CampaignOut:
    return CampaignOut(**_progress(session, campaign_id))


@router.post("/{campaign_id}/cancel", response_model=CampaignCancelled)
def cancel(_: ApiKeyDep, campaign_id: int, session: SessionDep) -> CampaignCancelled:
    """Cancel the campaign's queued and leased jobs; a finished campaign is left as it is."""
    try:
        cancelled = cancel_campaign(session, campaign_id)
    except UnknownCampaign:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id}") from None
    state = session.scalar(select(Campaign.state).where(Campaign.id == campaign_id))
    return CampaignCancelled(campaign_id=campaign_id, cancelled_jobs=cancelled, state=str(state))
