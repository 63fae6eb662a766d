"""``/v1/latbench``: LatBench CSV releases out of and into the store.

Export: ``GET /v1/latbench/export`` streams the CSV. Its JSON sidecar (version, devices, protocols,
filled cells, the CSV's SHA-256) is too large for a response header, and computing it again would give
another version and date, so the server keeps the sidecar of each recent export in memory under an
export id: the CSV response names it in ``X-Eagle-Export-Id`` (and a ``Link`` header), and
``GET /v1/latbench/export/sidecar?export_id=...`` returns it. Exporting records nothing (it is an open
read); the release's version is in ``X-Eagle-Release-Version``.

Import: ``POST /v1/latbench/import`` (API key) takes a multipart upload (``file``: the CSV, plain or
gzip; optional ``sidecar``: its JSON) and writes every row or none.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from eagle_server.deps import ApiKeyDep, SessionDep
from eagle_server.schemas import ImportOut
from latbench.store.devices import UnknownDevice, require_device
from latbench.store.releases import ReleaseFormatError, export_release, import_release

router = APIRouter(prefix="/latbench", tags=["latbench"])

EXPORT_ID_HEADER = "X-Eagle-Export-Id"
VERSION_HEADER = "X-Eagle-Release-Version"
_CHUNK = 1 << 16
_KEPT_SIDECARS = 32
MAX_UPLOAD_BYTES = 256 << 20  # a full 13-device release is about 3 MB


class _SidecarCache:
    """The sidecars of the last few exports, by export id (thread-safe: endpoints run in a pool)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, sidecar: dict[str, Any]) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = sidecar
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(key)


_sidecars = _SidecarCache(_KEPT_SIDECARS)

DevicesQuery = Annotated[
    list[str] | None,
    Query(description="devices to export (repeat the parameter or separate by commas); default: all measured"),
]


def _devices(session: Session, given: list[str] | None) -> list[str] | None:
    if not given:
        return None
    names = [name.strip() for item in given for name in item.split(",") if name.strip()]
    for name in names:
        try:
            require_device(session, name)
        except UnknownDevice as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return names or None


def _export(session: Session, devices: list[str] | None, version: str | None) -> tuple[str, dict[str, Any]]:
    out = io.StringIO()
    try:
        sidecar = export_release(session, out, devices=_devices(session, devices), version=version, record=False)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return out.getvalue(), sidecar


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the release CSV"}},
)
def export_csv(
    session: SessionDep,
    devices: DevicesQuery = None,
    version: Annotated[str | None, Query(max_length=128, description="release version")] = None,
) -> StreamingResponse:
    text, sidecar = _export(session, devices, version)
    export_id = _sidecars.put(sidecar)
    data = text.encode("utf-8")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), _CHUNK):
            yield data[start : start + _CHUNK]

    filename = f"latbench-{sidecar['version']}.csv"
    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            EXPORT_ID_HEADER: export_id,
            VERSION_HEADER: str(sidecar["version"]),
            "Link": f'</v1/latbench/export/sidecar?export_id={export_id}>; rel="describedby"',
        },
    )


@router.get("/export/sidecar")
def export_sidecar(
    session: SessionDep,
    export_id: Annotated[str | None, Query(description=f"from the export's {EXPORT_ID_HEADER} header")] = None,
    devices: DevicesQuery = None,
    version: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    """The sidecar of an earlier export (``export_id``), or of a fresh export of ``devices``."""
    if export_id is not None:
        sidecar = _sidecars.get(export_id)
        if sidecar is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"no export {export_id!r} here (the server keeps the last {_KEPT_SIDECARS} exports' "
                "sidecars in memory): export again",
            )
        return sidecar
    return _export(session, devices, version)[1]


def _read_csv_upload(upload: UploadFile) -> str:
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the CSV is over {MAX_UPLOAD_BYTES >> 20} MiB")
    if data[:2] == b"\x1f\x8b":  # gzip magic: the shipped release is a .csv.gz
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"file: broken gzip data: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"file: not UTF-8 text (byte {exc.start}): upload a CSV"
        ) from None


def _read_sidecar_upload(upload: UploadFile | None) -> dict[str, Any] | None:
    if upload is None:
        return None
    try:
        sidecar = json.loads(upload.file.read(MAX_UPLOAD_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"sidecar: not JSON: {exc}") from None
    if not isinstance(sidecar, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "sidecar: must be a JSON object")
    return sidecar


@router.post("/import", response_model=ImportOut)
def import_csv(
    _: ApiKeyDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="release CSV (plain or gzip)")],
    sidecar: Annotated[UploadFile | None, File(description="the release's JSON sidecar")] = None,
    provenance: Annotated[
        str | None, Form(max_length=128, description='default: "release <sidecar version>", else "import"')
    ] = None,
) -> ImportOut:
    text = _read_csv_upload(file)
    facts = _read_sidecar_upload(sidecar)
    if provenance is None:
        provenance = f"release {facts['version']}" if facts and facts.get("version") else "import"
    try:
        summary = import_release(session, io.StringIO(text, newline=""), provenance, sidecar=facts)
    except (ReleaseFormatError, ValueError) as exc:  # nothing was written
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return ImportOut(**summary)
