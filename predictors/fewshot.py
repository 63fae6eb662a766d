"""Few-shot latency prediction for a new device: a handful of measurements on top of what is known.

*Pretraining*: the GCNs shipped for the 13 LatBench devices (``predictors/pretrained``) each learnt one
device; together they are a bank of latency "shapes" over the space. *Reference*: where the store holds
measurements of those devices (a server imports LatBench 2020, so it does for every NB201 cell), their
measured log latency, denoised by the median over identical pruned graphs, is a second, sharper view of
the same shapes (:class:`ReferenceTable`). *Adaptation*: the new device's log latency is fitted as a
ridge-regularised linear map of the bank's log predictions, the reference columns and four op counts of
the cell (1x1 and 3x3 convolutions, pools, edges; they absorb an op that is relatively faster or slower
on the new device). The ridge strength is chosen by leave-one-out error on the adaptation measurements.

Which models to measure matters as much as the fit: :func:`suggest_models` spreads the adaptation set
over the space's main latency axis (the first principal component of the bank's log predictions), one
cell drawn at random from each of ``count`` equally populated strata of cells (no graph twice), so that
20 measurements cover fast and slow cells alike (``eagle train suggest``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from latbench import nb201
from latbench.graph import group_medians, predict_all_nb201
from predictors.artifact import read_artifact, write_artifact

FEW_SHOT_FILE = "fewshot.json"
REFERENCE_FILE = "reference.npz"
FEW_SHOT_FORMAT = 2  # 2 added the reference columns; format 1 artifacts (bank + counts) still load
MIN_FEW_SHOT = 5
MAX_SHOTS = 200  # few-shot on more data gains little; a GCN is the better choice from ~300 models
RIDGE_LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
COUNT_NAMES = ("conv1x1", "conv3x3", "avgpool", "edges")


class TrainingError(ValueError):
    """A training that cannot run (too few measurements, no base predictors, ...); the message says why."""


def op_counts(features: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """(B, 4): 1x1 convs, 3x3 convs, pools and edges of each pruned cell (from the GCN encoding)."""
    cells = adjacency.shape[1] - 1  # without the global node
    counts = features[:, :cells, :3].sum(axis=1)
    edges = adjacency[:, :cells, :cells].sum(axis=(1, 2)) - np.trace(adjacency[:, :cells, :cells], axis1=1, axis2=2)
    return np.concatenate([counts, edges[:, None]], axis=1).astype(np.float64)


@lru_cache(maxsize=1)
def _encoding_index() -> dict[bytes, int]:
    """Exact GCN encoding -> an NB201 index with that encoding (identical encodings: identical graphs)."""
    from latbench.graph import encode_all_nb201

    enc = encode_all_nb201()
    out: dict[bytes, int] = {}
    for i in np.flatnonzero(enc.valid):
        out.setdefault(_encoding_key(enc.adjacency[i], enc.features[i]), int(i))
    return out


def _encoding_key(adjacency: np.ndarray, features: np.ndarray) -> bytes:
    return np.asarray(adjacency, dtype=np.float32).tobytes() + np.asarray(features, dtype=np.float32).tobytes()


def nb201_indices(adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The NB201 index of each encoded cell, -1 for a graph outside NB201."""
    lookup = _encoding_index()
    return np.array([lookup.get(_encoding_key(a, f), -1) for a, f in zip(adjacency, features, strict=True)], dtype=int)


# -- reference: measured latencies of other devices ----------------------------------------------------------
@dataclass
class ReferenceTable:
    """Measured log latency (ms) of reference devices for every NB201 cell; NaN where none is known.

    Each value is the median over the device's measurements of all cells with the same pruned graph
    (LatBench measured identical networks separately; the median is the denoised latency of the graph).
    """

    devices: list[str]
    log_ms: np.ndarray  # (len(devices), NUM_ARCHS)

    @classmethod
    def from_measurements(cls, measured: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> ReferenceTable:
        """``measured``: device -> (NB201 indices, latency ms). Devices without a positive value are left out."""
        from latbench.store.archs import canonical_keys

        _, group = np.unique(np.asarray(canonical_keys()), return_inverse=True)
        devices, rows = [], []
        for device, (indices, ms) in measured.items():
            indices, ms = np.asarray(indices, dtype=int), np.asarray(ms, dtype=np.float64)
            keep = np.isfinite(ms) & (ms > 0)
            if not keep.any():
                continue
            medians = group_medians(np.log(ms[keep]), group[indices[keep]], int(group.max()) + 1)
            devices.append(device)
            rows.append(medians[group])
        table = np.stack(rows) if rows else np.zeros((0, nb201.NUM_ARCHS))
        return cls(devices, table)

    def restricted(self, devices: Sequence[str]) -> ReferenceTable:
        """Only the given devices (in this table's order)."""
        keep = [i for i, d in enumerate(self.devices) if d in set(devices)]
        return ReferenceTable([self.devices[i] for i in keep], self.log_ms[keep])

    def save(self, path: Path) -> None:
        np.savez_compressed(path, devices=np.asarray(self.devices, dtype=str), log_ms=self.log_ms.astype(np.float32))

    @classmethod
    def load(cls, path: Path) -> ReferenceTable:
        with np.load(path, allow_pickle=False) as data:
            return cls([str(d) for d in data["devices"]], data["log_ms"].astype(np.float64))


# -- the linear map ------------------------------------------------------------------------------------------
@dataclass
class RidgeMap:
    """y = intercept + ((x - mean) / std) · weights, with the ridge strength ``lam``."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    intercept: float = 0.0
    lam: float = 1.0

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, lam: float) -> RidgeMap:
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        z = (x - mean) / std
        w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ (y - y.mean()))
        return cls(mean.tolist(), std.tolist(), w.tolist(), float(y.mean()), float(lam))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + ((x - np.asarray(self.mean)) / np.asarray(self.std)) @ np.asarray(self.weights)


def cross_validated(x: np.ndarray, y: np.ndarray, lam: float, folds: int = 0) -> np.ndarray:
    """Out-of-fold predictions (leave-one-out when ``folds`` is 0 or >= len(y))."""
    n = y.shape[0]
    k = n if folds <= 0 or folds >= n else folds
    fold = np.arange(n) % k
    out = np.empty(n)
    for f in range(k):
        held = fold == f
        out[held] = RidgeMap.fit(x[~held], y[~held], lam)(x[held])
    return out


class FewShotPredictor:
    """A new device's latency from a bank of pretrained per-device predictors (see the module docstring)."""

    kind: ClassVar[str] = "latency"

    def __init__(self, bases: Mapping[str, Any], reference: ReferenceTable | None = None) -> None:
        if not bases:
            raise TrainingError("few-shot adaptation needs pretrained base predictors; none are available")
        self.bases = dict(bases)
        # A reference column must have a bank column to fall back on for cells it lacks.
        self.reference = reference.restricted(list(self.bases)) if reference is not None else None
        self.ridge: RidgeMap | None = None
        self.fit_info: dict[str, Any] = {}

    def feature_names(self) -> list[str]:
        refs = self.reference.devices if self.reference is not None else []
        return [f"log_ms:{n}" for n in self.bases] + [f"ref_log_ms:{n}" for n in refs] + list(COUNT_NAMES)

    def features(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        bank = np.stack(
            [np.log(np.asarray(p.predict(adjacency, features), dtype=np.float64)) for p in self.bases.values()], axis=1
        )
        columns = [bank]
        if self.reference is not None and self.reference.devices:
            index = nb201_indices(adjacency, features)
            names = list(self.bases)
            ref = np.full((index.shape[0], len(self.reference.devices)), np.nan)
            known = index >= 0
            ref[known] = self.reference.log_ms[:, index[known]].T
            for j, device in enumerate(self.reference.devices):  # unknown cells: the bank's prediction
                missing = ~np.isfinite(ref[:, j])
                ref[missing, j] = bank[missing, names.index(device)]
            columns.append(ref)
        columns.append(op_counts(features, adjacency))
        return np.concatenate(columns, axis=1)

    def fit(self, adjacency: np.ndarray, features: np.ndarray, y_ms: np.ndarray) -> dict[str, Any]:
        """Choose the ridge strength by leave-one-out error, fit, and return the out-of-fold predictions' info."""
        return self.fit_features(self.features(adjacency, features), y_ms)

    def fit_features(self, x: np.ndarray, y_ms: np.ndarray) -> dict[str, Any]:
        """:meth:`fit` on precomputed :meth:`features` (benchmarks reuse one feature table for many fits)."""
        y = np.log(np.asarray(y_ms, dtype=np.float64))
        if y.shape[0] < MIN_FEW_SHOT:
            raise TrainingError(f"few-shot adaptation needs at least {MIN_FEW_SHOT} measurements, got {y.shape[0]}")
        folds = 0 if y.shape[0] <= 60 else 10
        errors = {lam: float(np.mean((cross_validated(x, y, lam, folds) - y) ** 2)) for lam in RIDGE_LAMBDAS}
        lam = min(errors, key=lambda k: errors[k])
        self.ridge = RidgeMap.fit(x, y, lam)
        oof = np.exp(cross_validated(x, y, lam, folds))
        self.fit_info = {"lambda": lam, "cv": "leave-one-out" if folds == 0 else f"{folds}-fold", "shots": len(y)}
        return {**self.fit_info, "oof_ms": oof}

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        if self.ridge is None:
            raise ValueError("the few-shot predictor is not fitted")
        return np.exp(self.ridge(x))

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        if self.ridge is None:
            raise ValueError("the few-shot predictor is not fitted")
        if adjacency.shape[0] == 0:
            return np.zeros(0)
        return self.predict_features(self.features(adjacency, features))

    def predict_nb201(self) -> np.ndarray:
        return predict_all_nb201(self.predict)

    def save(self, directory: str | Path) -> Path:
        if self.ridge is None:
            raise ValueError("nothing to save: the few-shot predictor is not fitted")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for name, base in self.bases.items():
            base.save(path / "bases" / name)
        if self.reference is not None:
            self.reference.save(path / REFERENCE_FILE)
        meta = {
            "format": FEW_SHOT_FORMAT,
            "kind": self.kind,
            "method": "few-shot",
            "bases": list(self.bases),
            "reference": self.reference.devices if self.reference is not None else None,
            "features": self.feature_names(),
            "ridge": asdict(self.ridge),
            "fit": self.fit_info,
        }
        return write_artifact(path, meta, config_file=FEW_SHOT_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        from predictors.latency import LatencyPredictor

        path, meta = read_artifact(
            directory, cls.kind, "few-shot predictor", (1, FEW_SHOT_FORMAT), config_file=FEW_SHOT_FILE, weights=False
        )
        reference = ReferenceTable.load(path / REFERENCE_FILE) if meta.get("reference") is not None else None
        obj = cls({name: LatencyPredictor.load(path / "bases" / name) for name in meta["bases"]}, reference)
        obj.ridge = RidgeMap(**meta["ridge"])
        obj.fit_info = dict(meta.get("fit") or {})
        if len(obj.ridge.weights) != len(obj.feature_names()):
            names = obj.feature_names()
            raise ValueError(f"{path}: the map has {len(obj.ridge.weights)} weights for {len(names)} features")
        return obj


def shipped_bases(exclude: str) -> dict[str, Any]:
    """The shipped pretrained predictors of every LatBench device but ``exclude``."""
    from predictors.latency import LatencyPredictor
    from predictors.pretrained import shipped_devices, shipped_dir

    return {name: LatencyPredictor.load(shipped_dir(name)) for name in shipped_devices() if name != exclude}


# -- which models to measure ---------------------------------------------------------------------------------
def spread_selection(
    bank_log_ms: np.ndarray, candidates: np.ndarray, count: int, seed: int, graph_keys: Sequence[str] | None = None
) -> np.ndarray:
    """``count`` of ``candidates`` (NB201 indices), one at random from each stratum of the first principal
    component of ``bank_log_ms`` (B, NUM_ARCHS) over the candidates; deterministic for a seed.

    Strata are taken over cells, not distinct graphs: the space a search explores (and a test set) is
    cells, and many small graphs stand for many cells. With ``graph_keys`` no graph is picked twice (a
    stratum's draw skips graphs already picked when it has others).
    """
    candidates = np.asarray(candidates, dtype=int)
    if count < 1 or count > candidates.shape[0]:
        raise TrainingError(f"cannot pick {count} models out of {candidates.shape[0]} candidates")
    x = bank_log_ms[:, candidates].T
    x = x - x.mean(axis=0)
    axis = np.linalg.svd(x, full_matrices=False)[2][0]
    order = candidates[np.argsort(x @ axis, kind="stable")]
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    seen: set[str] = set()
    for stratum in np.array_split(order, count):
        choices = stratum
        if graph_keys is not None:
            fresh = np.array([i for i in stratum if graph_keys[i] not in seen], dtype=int)
            choices = fresh if fresh.size else stratum
        pick = int(rng.choice(choices))
        picked.append(pick)
        if graph_keys is not None:
            seen.add(graph_keys[pick])
    return np.array(picked, dtype=int)


def suggest_models(count: int, bases: Mapping[str, Any], seed: int = 0, exclude: Sequence[int] = ()) -> list[int]:
    """NB201 indices to measure first on a new device: valid cells spread over the latency axis, no graph twice."""
    from latbench.store.archs import architecture_rows

    rows = architecture_rows()
    skip = {int(i) for i in exclude}
    candidates = np.array([r["index"] for r in rows if r["valid"] and r["index"] not in skip], dtype=int)
    keys = [r["canonical_key"] for r in rows]
    bank = np.stack([np.log(np.asarray(p.predict_nb201(), dtype=np.float64)) for p in bases.values()])
    return sorted(int(i) for i in spread_selection(bank, candidates, count, seed, keys))
