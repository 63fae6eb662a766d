"""The predictor registry: versions of trained predictors in the LatBench store.

A version is one row of ``predictor_versions`` (device, kind, version number 1, 2, ... per device and
kind, state training -> ready | failed, training set, hyperparameters, held-out metrics, artifact).
Its artifact is a directory of portable files (JSON config + Keras weights, never pickles) written under
the trainer's workdir; :func:`mark_ready` also copies those files into ``predictor_files``, so a server on
another host (docker-compose runs the trainer in its own container) loads what the trainer wrote:
:func:`materialize` writes them under the server's own workdir on first use.

Artifact locations: a path relative to the workdir (``predictors/<device>/<kind>/v<N>``), or
``package:<name>`` for the small predictors shipped in ``predictors/pretrained/``.

Every function that changes rows commits (the trainer and the server share the store).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from latbench.store.db import begin_write, is_postgresql
from latbench.store.devices import require_device
from latbench.store.models import Device, PredictorFile, PredictorState, PredictorVersion, utcnow

KINDS = ("latency", "accuracy", "binary", "flops", "layerwise")
DEVICE_FREE_KINDS = ("accuracy", "binary")  # predictors that do not depend on a device
PACKAGE_PREFIX = "package:"
ARTIFACT_ROOT = "predictors"  # under the workdir
MAX_FILE_BYTES = 64 * 1024 * 1024  # a 4x600 GCN's weights are ~6 MB; anything far bigger is a mistake
STALE_AFTER_S = 600.0  # a training row without a heartbeat for this long belonged to a dead trainer


class RegistryError(ValueError):
    """A registry request that cannot be served (bad kind, unknown version, missing artifact...)."""


class AlreadyRegistered(RegistryError):
    """``register_version(only_first=True)`` found a version of that device and kind."""


def training_hash(indices: Iterable[int]) -> str:
    """SHA-256 of the sorted, distinct training indices: equal for equal training sets."""
    text = ",".join(str(i) for i in sorted({int(i) for i in indices}))
    return hashlib.sha256(text.encode()).hexdigest()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def artifact_dir_for(device: str | None, kind: str, version: int) -> str:
    """Where a version's artifact lives, relative to a workdir."""
    return f"{ARTIFACT_ROOT}/{device or '_'}/{kind}/v{version}"


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise RegistryError(f"unknown predictor kind {kind!r}; kinds: {', '.join(KINDS)}")
    return kind


def _device_id(session: Session, device: str | None, kind: str) -> int | None:
    if device is None:
        if kind not in DEVICE_FREE_KINDS:
            raise RegistryError(f"a {kind} predictor belongs to a device: give one")
        return None
    return require_device(session, device).id


def _device_filter(device_id: int | None) -> Any:
    return PredictorVersion.device_id.is_(None) if device_id is None else PredictorVersion.device_id == device_id


def _lock_key(device_id: int | None, kind: str) -> int:
    """A signed 64-bit advisory-lock key for a (device, kind) pair."""
    digest = hashlib.sha256(f"eagle-predictor:{device_id}:{kind}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# -- writing ---------------------------------------------------------------------------------------------
def register_version(
    session: Session,
    device: str | None,
    kind: str,
    *,
    method: str,
    train_indices: Sequence[int],
    hyperparameters: Mapping[str, Any],
    measurement_count: int,
    state: PredictorState = PredictorState.TRAINING,
    artifact: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    keep_indices: bool = True,
    only_first: bool = False,
) -> PredictorVersion:
    """A new version (the device's next number for ``kind``), committed; usually state training.

    ``keep_indices=False`` stores only the count and hash of the training set (for huge sets).
    ``only_first=True`` raises :class:`AlreadyRegistered` when the device has a version of ``kind``
    (checked under the allocation lock, so two processes cannot both register a first version).
    Two writers racing for the same number: the loser retries with the next one.
    """
    _check_kind(kind)
    indices = [int(i) for i in train_indices]
    for _attempt in range(5):
        begin_write(session)  # SQLite: take the write lock before reading the max version
        try:
            device_id = _device_id(session, device, kind)
            if is_postgresql(session):  # serialise allocations per (device, kind) until commit
                session.execute(select(func.pg_advisory_xact_lock(_lock_key(device_id, kind))))
            latest = session.scalar(
                select(func.max(PredictorVersion.version)).where(
                    _device_filter(device_id), PredictorVersion.kind == kind
                )
            )
            if only_first and latest is not None:
                session.rollback()
                raise AlreadyRegistered(f"{device} already has {kind} version {latest}")
            now = utcnow()
            row = PredictorVersion(
                device_id=device_id,
                kind=kind,
                version=int(latest or 0) + 1,
                state=PredictorState(state).value,
                method=method,
                train_count=len(set(indices)),
                train_hash=training_hash(indices),
                train_indices=indices if keep_indices else None,
                hyperparameters=dict(hyperparameters),
                metrics=dict(metrics) if metrics is not None else None,
                artifact=artifact,
                measurement_count=int(measurement_count),
                worker=worker_name(),
                created_at=now,
                updated_at=now,
                finished_at=None if state == PredictorState.TRAINING else now,
            )
            session.add(row)
            session.commit()
            return row
        except IntegrityError:
            session.rollback()
        except BaseException:
            session.rollback()
            raise
    raise RegistryError(f"could not allocate a version number for {device}/{kind} (too many concurrent writers)")


def _get(session: Session, version_id: int) -> PredictorVersion:
    row = session.get(PredictorVersion, version_id)
    if row is None:
        raise RegistryError(f"no predictor version with id {version_id}")
    return row


def update_progress(session: Session, version_id: int, progress: Mapping[str, Any]) -> None:
    """Record training progress (also the trainer's heartbeat); only while the version is training."""
    session.execute(
        update(PredictorVersion)
        .where(PredictorVersion.id == version_id, PredictorVersion.state == PredictorState.TRAINING.value)
        .values(progress=dict(progress), updated_at=utcnow())
    )
    session.commit()


def _artifact_files(directory: Path) -> list[tuple[str, bytes]]:
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RegistryError(f"{path}: {size} bytes is too big for an artifact file (max {MAX_FILE_BYTES})")
        files.append((path.relative_to(directory).as_posix(), path.read_bytes()))
    if not files:
        raise RegistryError(f"{directory} holds no files: nothing to register")
    return files


def mark_ready(
    session: Session,
    version_id: int,
    *,
    metrics: Mapping[str, Any],
    artifact: str,
    artifact_dir: Path | None = None,
    progress: Mapping[str, Any] | None = None,
) -> PredictorVersion:
    """The version is trained: record its metrics and artifact (files copied into the store)."""
    row = _get(session, version_id)
    if row.state != PredictorState.TRAINING.value:
        raise RegistryError(f"predictor version {version_id} is {row.state}, not training")
    files = _artifact_files(artifact_dir) if artifact_dir is not None else []
    try:
        for name, data in files:
            session.add(
                PredictorFile(
                    version_id=version_id, name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data
                )
            )
        now = utcnow()
        row.state = PredictorState.READY.value
        row.metrics = dict(metrics)
        row.artifact = artifact
        row.error = None
        row.updated_at = now
        row.finished_at = now
        if progress is not None:
            row.progress = dict(progress)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return row


def mark_failed(session: Session, version_id: int, error: str) -> PredictorVersion:
    row = _get(session, version_id)
    now = utcnow()
    row.state = PredictorState.FAILED.value
    row.error = error[:4000]
    row.updated_at = now
    row.finished_at = now
    session.commit()
    return row


def fail_stale(session: Session, older_than_s: float = STALE_AFTER_S, now: datetime | None = None) -> int:
    """Mark training versions whose trainer stopped beating (``older_than_s``) failed; returns how many."""
    now = now or utcnow()
    result = session.execute(
        update(PredictorVersion)
        .where(
            PredictorVersion.state == PredictorState.TRAINING.value,
            PredictorVersion.updated_at < now - timedelta(seconds=older_than_s),
        )
        .values(
            state=PredictorState.FAILED.value,
            error=f"the trainer stopped reporting progress for over {older_than_s:.0f} s (process gone?)",
            finished_at=now,
            updated_at=now,
        )
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


# -- reading ---------------------------------------------------------------------------------------------
def latest_ready(session: Session, device: str | None, kind: str = "latency") -> PredictorVersion | None:
    """The newest ready version of a device and kind (None when there is none)."""
    return latest(session, device, kind, state=PredictorState.READY)


def latest(
    session: Session, device: str | None, kind: str = "latency", state: PredictorState | None = None
) -> PredictorVersion | None:
    """The newest version of a device and kind (in ``state`` if given)."""
    _check_kind(kind)
    device_id = _device_id(session, device, kind)
    query = select(PredictorVersion).where(_device_filter(device_id), PredictorVersion.kind == kind)
    if state is not None:
        query = query.where(PredictorVersion.state == PredictorState(state).value)
    return session.scalar(query.order_by(PredictorVersion.version.desc()).limit(1))


def get_version(session: Session, version_id: int) -> PredictorVersion:
    return _get(session, version_id)


def list_versions(
    session: Session,
    device: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[PredictorVersion]]:
    """``(total, page)``: versions matching the filters, newest first."""
    query = select(PredictorVersion)
    if device is not None:
        query = query.where(PredictorVersion.device_id == require_device(session, device).id)
    if kind is not None:
        query = query.where(PredictorVersion.kind == _check_kind(kind))
    if state is not None:
        query = query.where(PredictorVersion.state == PredictorState(state).value)
    total = session.scalar(select(func.count()).select_from(query.with_only_columns(PredictorVersion.id).subquery()))
    page = session.scalars(
        query.order_by(PredictorVersion.created_at.desc(), PredictorVersion.id.desc()).limit(limit).offset(offset)
    )
    return int(total or 0), list(page)


def device_name(row: PredictorVersion) -> str | None:
    return row.device.name if row.device is not None else None


def measurement_counts(session: Session) -> dict[str, int]:
    """Measurements per device name (every device, 0 for none)."""
    from latbench.store.models import Measurement

    counts = dict(session.execute(select(Measurement.device_id, func.count()).group_by(Measurement.device_id)).all())
    return {name: int(counts.get(did, 0)) for did, name in session.execute(select(Device.id, Device.name))}


# -- artifacts -------------------------------------------------------------------------------------------
def stored_files(session: Session, version_id: int) -> list[PredictorFile]:
    return list(session.scalars(select(PredictorFile).where(PredictorFile.version_id == version_id)))


def materialize(session: Session, row: PredictorVersion, workdir: Path) -> Path:
    """A local directory holding the version's artifact.

    ``package:`` artifacts resolve to the shipped files; others to ``<workdir>/<artifact>`` when the files
    there match the store's hashes, else the store's copies are written there first.
    """
    if row.artifact is None:
        raise RegistryError(f"predictor version {row.id} has no artifact (state {row.state})")
    if row.artifact.startswith(PACKAGE_PREFIX):
        from predictors.pretrained import shipped_dir

        return shipped_dir(row.artifact.removeprefix(PACKAGE_PREFIX))
    target = Path(row.artifact)
    if not target.is_absolute():
        target = Path(workdir) / target
    files = stored_files(session, row.id)
    if not files:  # registered without copies (e.g. by hand): the directory must be there
        if not target.is_dir():
            raise RegistryError(f"predictor version {row.id}: artifact {target} is missing and the store has no copy")
        return target
    for f in files:
        path = target / f.name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(f.data)
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return target
