"""``GET /v1/measurements``: stored latencies, filtered by device, architecture, campaign and provenance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from eagle_server.deps import SessionDep
from eagle_server.schemas import MAX_PAGE, MeasurementOut, MeasurementPage
from latbench import nb201
from latbench.store.devices import UnknownDevice, require_device
from latbench.store.models import Device, Measurement

router = APIRouter(prefix="/measurements", tags=["measurements"])


@router.get("", response_model=MeasurementPage)
def list_measurements(
    session: SessionDep,
    device: Annotated[str | None, Query(description="device name")] = None,
    arch: Annotated[str | None, Query(description="NB201 index or arch string")] = None,
    campaign: Annotated[int | None, Query(description="campaign id")] = None,
    provenance: Annotated[str | None, Query(description='e.g. "eagle" or "LatBench 2020"')] = None,
    raw: Annotated[bool, Query(description="include every timed run")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MeasurementPage:
    """Oldest first (by id), ``limit`` rows from ``offset``; ``total`` counts every match."""
    query = select(Measurement, Device.name).join(Device, Device.id == Measurement.device_id)
    if device is not None:
        try:
            query = query.where(Measurement.device_id == require_device(session, device).id)
        except UnknownDevice as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if arch is not None:
        try:
            query = query.where(Measurement.arch_index == nb201.parse_arch(arch).index)
        except nb201.ArchError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"arch: {exc}") from None
    if campaign is not None:
        query = query.where(Measurement.campaign_id == campaign)
    if provenance is not None:
        query = query.where(Measurement.provenance == provenance)
    total = session.scalar(select(func.count()).select_from(query.with_only_columns(Measurement.id).subquery()))
    page = query.order_by(Measurement.id).limit(limit).offset(offset)
    if not raw:  # up to 1000 floats a row: leave them in the database unless asked for
        page = page.options(defer(Measurement.raw_ms))
    rows = session.execute(page).all()
    codes = nb201.op_codes_by_index()
    items = [
        MeasurementOut(
            id=m.id,
            device=device_name,
            arch_index=m.arch_index,
            arch_str=nb201.Arch.from_op_code(codes[m.arch_index]).arch_str,
            latency_ms=m.latency_ms,
            stats=m.stats,
            raw_ms=m.raw_ms if raw else None,
            runtime=m.runtime,
            precision=m.precision,
            versions=m.versions,
            agent_id=m.agent_id,
            job_id=m.job_id,
            campaign_id=m.campaign_id,
            provenance=m.provenance,
            measured_at=m.measured_at,
        )
        for m, device_name in rows
    ]
    return MeasurementPage(total=int(total or 0), limit=limit, offset=offset, items=items)
