"""``/v1/devices``: the devices the store knows (shipped LatBench ones and those agents registered)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import func, select

from eagle_server.deps import SessionDep
from eagle_server.schemas import DeviceDetail, DeviceOut
from latbench.store.devices import UnknownDevice, require_device
from latbench.store.models import Agent, Device, Measurement

router = APIRouter(prefix="/devices", tags=["devices"])


def _fields(device: Device, measurements: int) -> dict[str, object]:
    return {
        "name": device.name,
        "device_class": device.device_class,
        "hardware": device.hardware,
        "precision": device.precision,
        "runtime": device.runtime,
        "host": device.host,
        "created_at": device.created_at,
        "measurements": measurements,
    }


@router.get("", response_model=list[DeviceOut])
def list_devices(session: SessionDep) -> list[DeviceOut]:
    counts = dict(session.execute(select(Measurement.device_id, func.count()).group_by(Measurement.device_id)).all())
    devices = session.scalars(select(Device).order_by(Device.name))
    return [DeviceOut(**_fields(d, int(counts.get(d.id, 0)))) for d in devices]  # type: ignore[arg-type]


@router.get("/{name}", response_model=DeviceDetail)
def get_device(name: str, session: SessionDep) -> DeviceDetail:
    try:
        device = require_device(session, name)
    except UnknownDevice as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    by_provenance = {
        str(prov): int(n)
        for prov, n in session.execute(
            select(Measurement.provenance, func.count())
            .where(Measurement.device_id == device.id)
            .group_by(Measurement.provenance)
            .order_by(Measurement.provenance)
        )
    }
    agents = session.scalar(select(func.count()).select_from(Agent).where(Agent.device_id == device.id))
    return DeviceDetail(
        **_fields(device, sum(by_provenance.values())),  # type: ignore[arg-type]
        measurements_by_provenance=by_provenance,
        agents=int(agents or 0),
    )
