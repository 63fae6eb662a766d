"""Serving predictions: the newest ready predictor per device, loaded once, answering from a table.

NB201 has 15,625 cells, so a loaded predictor is run once over the whole space (identical encodings
scored once: the 15,284 valid cells are 5,256 distinct graphs) and the network is dropped; a request is
then a lookup. The table of a version is computed when the version is first needed (or by :meth:`warm`
at server start). Measured latencies come from the store the same way: the device's newest measurement
per cell, re-read when the device's measurement count or newest id changes.

Freshness: with the refresher thread running (:meth:`start_refresher`; the app starts it) requests never
touch the database once a device is loaded: every ``refresh_s`` seconds the thread checks the registry and
the measurements of the loaded devices and swaps in a newer version after loading it, while the old one
keeps answering. Without it (tests), a request re-checks when its cached answer is older than ``refresh_s``.

Errors: an unknown device raises ``UnknownDevice`` (its message lists the known devices); a device with
no ready predictor raises :class:`NotReady`, whose message says what is training (and how far it got)
or how to get a predictor trained.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from latbench import nb201
from latbench.store.devices import require_device
from latbench.store.models import Measurement, PredictorState, PredictorVersion, utcnow
from predictors import registry

log = logging.getLogger(__name__)

INVALID_REASON = (
    "the cell has no path from its input to its output ('none' ops cut every path), so it computes nothing "
    "and has no latency"
)
REFRESH_S = 2.0
MAX_ARCHS = 50_000  # per request: the whole space three times over
# One predictor load at a time across services: Keras graph building is not thread-safe.
_KERAS_LOAD_LOCK = threading.Lock()


class NotReady(RuntimeError):
    """No ready predictor for a device; ``training`` lists the versions in training and their progress."""

    def __init__(self, message: str, training: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.training = training or []


class ArchRequestError(ValueError):
    """Requested architectures that are not NB201 cells (the message names them)."""


# -- the space --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Space:
    arch_strs: tuple[str, ...]
    valid: np.ndarray  # (15625,) bool


@cache
def nb201_space() -> Space:
    from latbench.store.archs import architecture_rows

    rows = architecture_rows()
    return Space(arch_strs=tuple(r["arch_str"] for r in rows), valid=np.array([r["valid"] for r in rows]))


def resolve_archs(items: Sequence[int | str]) -> np.ndarray:
    """NB201 indices of requested architectures (indices or anything ``nb201.parse_arch`` takes)."""
    out = np.empty(len(items), dtype=np.int64)
    bad: list[str] = []
    for k, item in enumerate(items):
        if isinstance(item, bool):  # JSON true is not an index
            bad.append(f"archs[{k}]: {item!r} is not an NB201 index or arch string")
            continue
        if isinstance(item, int) and 0 <= item < nb201.NUM_ARCHS:
            out[k] = item
            continue
        try:
            out[k] = nb201.parse_arch(item).index
        except (nb201.ArchError, ValueError, TypeError) as exc:
            bad.append(f"archs[{k}]: {exc}")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ArchRequestError("; ".join(bad[:5]) + more)
    return out


# -- loading a version ------------------------------------------------------------------------------------
def load_predictor(directory: Path) -> Any:
    """The predictor saved in ``directory``: a few-shot composition or a GCN latency predictor."""
    from predictors.fewshot import FEW_SHOT_FILE, FewShotPredictor

    if (Path(directory) / FEW_SHOT_FILE).is_file():
        return FewShotPredictor.load(directory)
    from predictors.latency import LatencyPredictor

    return LatencyPredictor.load(directory)


def score_space(predictor: Any) -> np.ndarray:
    """Predicted ms of every NB201 index (NaN for invalid cells); identical graphs are scored once."""
    table = np.asarray(predictor.predict_nb201(), dtype=np.float64)
    if table.shape != (nb201.NUM_ARCHS,):
        raise ValueError(f"a predictor gave {table.shape} values for the {nb201.NUM_ARCHS} NB201 cells")
    return table


@dataclass(frozen=True)
class ServedPredictor:
    """A loaded version: its registry facts and its prediction for every NB201 cell (latency ms or accuracy %)."""

    version_id: int
    device: str | None  # None: a device-free kind (accuracy)
    kind: str
    version: int
    method: str
    created_at: datetime
    metrics: dict[str, Any] | None
    table: np.ndarray = field(repr=False)
    load_s: float = 0.0

    def info(self) -> dict[str, Any]:
        return {
            "id": self.version_id,
            "version": self.version,
            "kind": self.kind,
            "method": self.method,
            "created_at": self.created_at.isoformat(),
            "metrics": self.metrics,
        }


def describe_training(row: PredictorVersion, now: datetime | None = None) -> dict[str, Any]:
    """What a training version has done so far (for 503 answers and ``/v1/predictors``)."""
    now = now or utcnow()
    progress = dict(row.progress or {})
    return {
        "id": row.id,
        "version": row.version,
        "method": row.method,
        "started_s_ago": round((now - row.created_at).total_seconds(), 1),
        "progress": progress,
    }


def _progress_text(t: dict[str, Any]) -> str:
    p = t["progress"]
    parts = [f"version {t['version']} ({t['method']})"]
    if p.get("epoch") and p.get("epochs"):
        parts.append(f"epoch {p['epoch']}/{p['epochs']}")
    elif p.get("phase"):
        parts.append(str(p["phase"]))
    if p.get("eta_s") is not None:
        parts.append(f"about {math.ceil(float(p['eta_s']))} s left")
    parts.append(f"started {t['started_s_ago']:.0f} s ago")
    return ", ".join(parts)


# -- the service ------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    served: ServedPredictor
    checked_at: float


@dataclass
class _Measured:
    values: np.ndarray
    key: tuple[int, int]
    checked_at: float


class PredictionService:
    """Per-device predictions for the REST API (thread-safe; one instance per app)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        workdir: str | Path,
        kind: str = "latency",
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.factory = session_factory
        self.workdir = Path(workdir)
        self.kind = kind
        self.refresh_s = refresh_s
        self._entries: dict[str, _Entry] = {}
        self._measured: dict[int, _Measured] = {}
        self._device_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._load_lock = _KERAS_LOAD_LOCK
        self._refresher: threading.Thread | None = None
        self._stop = threading.Event()

    # -- background refresh -----------------------------------------------------------------------
    def start_refresher(self) -> None:
        """Check loaded devices for newer versions and measurements in a daemon thread (idempotent)."""
        if self._refresher is not None and self._refresher.is_alive():
            return
        self._stop.clear()
        self._refresher = threading.Thread(target=self._refresh_loop, name="eagle-predictions", daemon=True)
        self._refresher.start()

    def stop_refresher(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout_s)
            self._refresher = None

    def _background(self) -> bool:
        return self._refresher is not None and self._refresher.is_alive()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def refresh(self) -> None:
        """Bring every loaded device up to date (newest ready version, newest measurements)."""
        for device in list(self._entries):
            try:
                self._check(device, self._entries.get(device), time.monotonic())
                self._reload_measured(device, time.monotonic())
            except Exception as exc:  # keep serving what is loaded; say why the refresh failed
                log.error("refreshing the %s predictor of %s failed: %s", self.kind, device, exc)

    def cached_version(self, device: str) -> int | None:
        """The version number in memory for ``device`` (None when none is loaded); no database access."""
        entry = self._entries.get(device)
        return entry.served.version if entry is not None else None

    # -- predictors -------------------------------------------------------------------------------
    def served(self, device: str) -> ServedPredictor:
        """The device's newest ready predictor (loaded on first use, refreshed every ``refresh_s``)."""
        entry = self._entries.get(device)
        now = time.monotonic()
        if entry is not None and (self._background() or now - entry.checked_at < self.refresh_s):
            return entry.served
        return self._check(device, entry, now)

    def _check(self, device: str, entry: _Entry | None, now: float) -> ServedPredictor:
        """Ask the registry for the device's newest ready version; load it when it is not the one in memory."""
        with self.factory() as session:
            dev = require_device(session, device)
            self._device_ids[device] = dev.id
            row = registry.latest_ready(session, device, self.kind)
            if row is None:
                if entry is not None:  # a served version never stops being ready; keep it
                    entry.checked_at = now
                    return entry.served
                raise self._not_ready(session, device)
            if entry is not None and entry.served.version_id == row.id:
                entry.checked_at = now
                return entry.served
            version_id = row.id
        return self._load(device, version_id)

    def _load(self, device: str, version_id: int) -> ServedPredictor:
        with self._load_lock:
            entry = self._entries.get(device)
            if entry is not None and entry.served.version_id == version_id:  # another thread did it
                return entry.served
            started = time.perf_counter()
            with self.factory() as session:
                row = registry.get_version(session, version_id)
                directory = registry.materialize(session, row, self.workdir)
                facts = (row.id, row.kind, row.version, row.method, row.created_at, row.metrics)
            table = score_space(load_predictor(directory))
            _clear_keras()
            nb201_space()  # built once (~0.5 s), so that the first request does not pay for it
            served = ServedPredictor(
                version_id=facts[0],
                device=device,
                kind=facts[1],
                version=facts[2],
                method=facts[3],
                created_at=facts[4],
                metrics=facts[5],
                table=table,
                load_s=time.perf_counter() - started,
            )
            with self._lock:
                self._entries[device] = _Entry(served, time.monotonic())
            log.info(
                "serving %s %s v%d (%s), loaded in %.2f s",
                device,
                self.kind,
                served.version,
                served.method,
                served.load_s,
            )
            return served

    def _not_ready(self, session: Session, device: str) -> NotReady:
        rows = session.scalars(
            select(PredictorVersion)
            .where(
                PredictorVersion.device_id == self._device_ids[device],
                PredictorVersion.kind == self.kind,
                PredictorVersion.state == PredictorState.TRAINING.value,
            )
            .order_by(PredictorVersion.version.desc())
        ).all()
        training = [describe_training(r) for r in rows]
        if training:
            return NotReady(
                f"no {self.kind} predictor is ready for device {device!r} yet: training is in progress ("
                + "; ".join(_progress_text(t) for t in training)
                + "); try again when it has finished (GET /v1/predictors shows its progress)",
                training,
            )
        count = session.scalar(
            select(func.count()).select_from(Measurement).where(Measurement.device_id == self._device_ids[device])
        )
        return NotReady(
            f"no {self.kind} predictor is ready for device {device!r} and none is training (it has {count or 0} "
            f"measurements): run `eagle train latency --device {device}` (add --few-shot with 10-50 "
            "measurements), or keep `eagle trainer` running, which trains one when enough measurements arrive"
        )

    def warm(self, devices: Sequence[str] | None = None) -> dict[str, float]:
        """Load the ready predictor of every device (or of ``devices``); returns seconds per device loaded."""
        if devices is None:
            with self.factory() as session:
                devices = sorted(
                    {
                        registry.device_name(r) or ""
                        for r in session.scalars(
                            select(PredictorVersion).where(
                                PredictorVersion.kind == self.kind,
                                PredictorVersion.state == PredictorState.READY.value,
                                PredictorVersion.device_id.is_not(None),
                            )
                        )
                    }
                    - {""}
                )
        loaded = {}
        for device in devices:
            try:
                loaded[device] = self.served(device).load_s
            except Exception as exc:  # one broken artifact must not keep the others from loading
                log.error("cannot load the %s predictor of %s: %s", self.kind, device, exc)
        return loaded

    # -- measurements -----------------------------------------------------------------------------
    def measured(self, device: str) -> np.ndarray:
        """The device's newest measured latency (ms) per NB201 index, NaN where none (cached)."""
        device_id = self._device_ids.get(device)
        now = time.monotonic()
        cached = self._measured.get(device_id) if device_id is not None else None
        if cached is not None and (self._background() or now - cached.checked_at < self.refresh_s):
            return cached.values
        return self._reload_measured(device, now)

    def _reload_measured(self, device: str, now: float) -> np.ndarray:
        device_id = self._device_ids.get(device)
        cached = self._measured.get(device_id) if device_id is not None else None
        with self.factory() as session:
            if device_id is None:
                device_id = require_device(session, device).id
                self._device_ids[device] = device_id
                cached = self._measured.get(device_id)
            count, newest = session.execute(
                select(func.count(), func.max(Measurement.id)).where(Measurement.device_id == device_id)
            ).one()
            key = (int(count or 0), int(newest or 0))
            if cached is not None and cached.key == key:
                cached.checked_at = now
                return cached.values
            values = np.full(nb201.NUM_ARCHS, np.nan)
            rows = session.execute(
                select(Measurement.arch_index, Measurement.latency_ms)
                .where(Measurement.device_id == device_id)
                .order_by(Measurement.measured_at, Measurement.id)
            ).all()
        if rows:
            index, latency = np.array(rows, dtype=np.float64).T
            values[index.astype(np.int64)] = latency  # ordered oldest first: the newest wins
        self._measured[device_id] = _Measured(values, key, now)
        return values

    # -- requests ---------------------------------------------------------------------------------
    def predict(self, device: str, archs: Sequence[int | str]) -> dict[str, Any]:
        """The ``/v1/predict`` answer for ``archs`` (in request order, repeats kept)."""
        if len(archs) > MAX_ARCHS:
            raise ArchRequestError(f"at most {MAX_ARCHS} archs per request, got {len(archs)}")
        indices = resolve_archs(archs)
        served = self.served(device)
        measured = self.measured(device)
        space = nb201_space()
        predicted = served.table[indices]
        truth = measured[indices]
        valid = space.valid[indices]
        strs = space.arch_strs
        predictions = []
        for k, index in enumerate(indices.tolist()):
            m = truth[k]
            item: dict[str, Any] = {
                "index": index,
                "arch_str": strs[index],
                "valid": bool(valid[k]),
                "latency_ms": round(float(predicted[k]), 5) if valid[k] and math.isfinite(predicted[k]) else None,
                "measured_ms": None if m != m else float(m),  # NaN check without a function call
            }
            if not valid[k]:
                item["reason"] = INVALID_REASON
            predictions.append(item)
        return {
            "device": device,
            "kind": served.kind,
            "predictor_version": served.version,
            "predictor": served.info(),
            "predictions": predictions,
        }


class AccuracyService:
    """The newest ready device-free accuracy version (``eagle train accuracy``), scored once over NB201: the
    predicted CIFAR-100 validation accuracy (percent) of every cell. The registry is asked again at most every
    ``refresh_s`` seconds; a newer version is loaded while the old one keeps answering."""

    kind = "accuracy"

    def __init__(self, session_factory: sessionmaker[Session], workdir: str | Path, refresh_s: float = REFRESH_S):
        self.factory = session_factory
        self.workdir = Path(workdir)
        self.refresh_s = refresh_s
        self._served: ServedPredictor | None = None
        self._checked_at = -math.inf

    def served(self) -> ServedPredictor:
        current, now = self._served, time.monotonic()
        if current is not None and now - self._checked_at < self.refresh_s:
            return current
        with self.factory() as session:
            row = registry.latest_ready(session, None, self.kind)
            if row is None or (current is not None and current.version_id == row.id):
                if current is None:
                    raise self._not_ready(session)
                self._checked_at = now  # a served version never stops being ready; keep it
                return current
            directory = registry.materialize(session, row, self.workdir)
            facts = (row.id, row.version, row.method, row.created_at, row.metrics)
        with _KERAS_LOAD_LOCK:
            if self._served is not None and self._served.version_id == facts[0]:  # another thread did it
                return self._served
            from predictors.accuracy import AccuracyPredictor

            started = time.perf_counter()
            table = score_space(AccuracyPredictor.load(directory))
            _clear_keras()
            self._served = ServedPredictor(
                facts[0], None, self.kind, facts[1], facts[2], facts[3], facts[4], table, time.perf_counter() - started
            )
            self._checked_at = time.monotonic()
            log.info("serving accuracy v%d (%s)", facts[1], facts[2])
            return self._served

    def _not_ready(self, session: Session) -> NotReady:
        rows = session.scalars(
            select(PredictorVersion)
            .where(
                PredictorVersion.device_id.is_(None),
                PredictorVersion.kind == self.kind,
                PredictorVersion.state == PredictorState.TRAINING.value,
            )
            .order_by(PredictorVersion.version.desc())
        ).all()
        training = [describe_training(r) for r in rows]
        doing = (
            "training is in progress (" + "; ".join(_progress_text(t) for t in training) + "); try again when it has "
            "finished"
            if training
            else "run `eagle train accuracy` (about 4 minutes with 100 models on 2 cores)"
        )
        return NotReady(f"no accuracy predictor is ready: {doing}", training)

    def predict(self, indices: np.ndarray) -> tuple[list[float | None], dict[str, Any]]:
        """Predicted accuracy (percent, None for invalid cells) of NB201 ``indices``, and the version's facts."""
        served = self.served()
        values = served.table[indices]
        return [round(float(v), 4) if math.isfinite(v) else None for v in values], served.info()


def _clear_keras() -> None:
    """Free the Keras graph state of a model that is no longer needed (only its table is kept)."""
    try:
        import keras

        keras.backend.clear_session()
    except Exception:  # pragma: no cover - never worth failing a load for
        pass
