"""Few-shot prediction for a new device: reference columns, artifacts, and which models to measure."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from latbench.data import load_latency
from latbench.graph import encode_all_nb201
from latbench.store.archs import architecture_rows
from predictors.fewshot import (
    FEW_SHOT_FILE,
    FewShotPredictor,
    ReferenceTable,
    TrainingError,
    nb201_indices,
    spread_selection,
    suggest_models,
)

GPU = "desktop_gpu_gtx_1080ti_fp32"
CPU = "desktop_cpu_core_i7_7820x_fp32"


def _groups() -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for row in architecture_rows():
        if row["valid"]:
            groups.setdefault(row["canonical_key"], []).append(row["index"])
    return groups


class _TableBase:
    """A bank predictor answering from a fixed per-index table (what a shipped GCN does, minus the GCN)."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        return self.table[nb201_indices(adjacency, features)]

    def predict_nb201(self) -> np.ndarray:
        return self.table

    def save(self, directory: Any) -> None:  # pragma: no cover - not saved in these tests
        raise NotImplementedError


def test_reference_is_the_median_of_identical_graphs() -> None:
    group = next(g for g in _groups().values() if len(g) >= 3)
    a, b, c = group[:3]
    other = next(g for g in _groups().values() if len(g) == 1)[0]
    ref = ReferenceTable.from_measurements({"dev": (np.array([a, b, other]), np.array([1.0, 4.0, 3.0]))})
    assert ref.devices == ["dev"]
    assert ref.log_ms[0, a] == pytest.approx(np.log(2.0))  # median of log 1 and log 4
    assert ref.log_ms[0, c] == pytest.approx(np.log(2.0))  # never measured, but the same graph was
    assert ref.log_ms[0, other] == pytest.approx(np.log(3.0))
    unmeasured = [g[0] for g in _groups().values() if a not in g and other not in g][:50]
    assert np.isnan(ref.log_ms[0, unmeasured]).all()


def test_reference_skips_devices_without_values_and_round_trips(tmp_path) -> None:
    ref = ReferenceTable.from_measurements(
        {"empty": (np.array([1, 2]), np.array([np.nan, -1.0])), "dev": (np.array([5]), np.array([2.0]))}
    )
    assert ref.devices == ["dev"]
    ref.save(tmp_path / "r.npz")
    back = ReferenceTable.load(tmp_path / "r.npz")
    assert back.devices == ["dev"]
    np.testing.assert_allclose(back.log_ms, ref.log_ms, rtol=1e-6, equal_nan=True)
    assert ref.restricted(["other"]).devices == []


def test_nb201_indices_maps_encodings_back_and_flags_foreign_graphs() -> None:
    enc = encode_all_nb201()
    idx = np.flatnonzero(enc.valid)[[0, 100, 5000]]
    found = nb201_indices(enc.adjacency[idx], enc.features[idx])
    keys = [r["canonical_key"] for r in architecture_rows()]
    assert [keys[i] for i in found] == [keys[i] for i in idx]  # the same graph (maybe another index)
    foreign = enc.features[idx[:1]].copy()
    foreign[0, 0, :] = 7.0
    assert nb201_indices(enc.adjacency[idx[:1]], foreign).tolist() == [-1]


def _latbench(device: str) -> np.ndarray:
    return np.asarray(load_latency().column(device), dtype=np.float64)


def test_reference_columns_sharpen_the_fit_and_survive_save_load(tmp_path) -> None:
    """A new device 1.5x the CPU: with the CPU's measurements as reference, 20 shots are near exact."""
    enc = encode_all_nb201()
    gpu, cpu = _latbench(GPU), _latbench(CPU)
    measured = np.flatnonzero(np.isfinite(cpu) & np.isfinite(gpu) & enc.valid)
    # A smooth but wrong bank (the GPU) and the CPU's real values as the reference.
    bases = {GPU: _TableBase(gpu), CPU: _TableBase(np.where(np.isfinite(cpu), cpu, gpu))}
    reference = ReferenceTable.from_measurements({CPU: (measured, cpu[measured])})
    new_ms = 1.5 * np.exp(reference.log_ms[0])  # the device follows the denoised CPU latency exactly
    rng = np.random.default_rng(0)
    adapt = rng.choice(measured, 20, replace=False)
    test = np.setdiff1d(measured, adapt)[:2000]

    def share(p: FewShotPredictor) -> float:
        p.fit(enc.adjacency[adapt], enc.features[adapt], new_ms[adapt])
        pred = p.predict(enc.adjacency[test], enc.features[test])
        return float(np.mean(np.abs(pred / new_ms[test] - 1) <= 0.05))

    plain, with_ref = FewShotPredictor(bases), FewShotPredictor(bases, reference)
    assert with_ref.feature_names()[2] == f"ref_log_ms:{CPU}"
    assert share(with_ref) > 0.99 and share(with_ref) > share(plain)


def _shipped(device: str) -> Any:
    from predictors.latency import LatencyPredictor
    from predictors.pretrained import shipped_dir

    return LatencyPredictor.load(shipped_dir(device))


def test_a_few_shot_artifact_round_trips_with_its_reference(tmp_path) -> None:
    enc = encode_all_nb201()
    cpu = _latbench(CPU)
    measured = np.flatnonzero(np.isfinite(cpu) & enc.valid)
    reference = ReferenceTable.from_measurements(
        {CPU: (measured, cpu[measured]), "not_a_base": (measured, cpu[measured])}
    )
    p = FewShotPredictor({CPU: _shipped(CPU)}, reference)
    assert p.reference is not None and p.reference.devices == [CPU]  # no bank column to fall back on: dropped
    adapt = measured[:20]
    p.fit(enc.adjacency[adapt], enc.features[adapt], 2.0 * cpu[adapt])
    p.save(tmp_path / "fs")
    meta = json.loads((tmp_path / "fs" / FEW_SHOT_FILE).read_text())
    assert meta["format"] == 2 and meta["reference"] == [CPU] and len(meta["ridge"]["weights"]) == 6
    back = FewShotPredictor.load(tmp_path / "fs")
    some = measured[100:130]
    np.testing.assert_allclose(
        back.predict(enc.adjacency[some], enc.features[some]),
        p.predict(enc.adjacency[some], enc.features[some]),
        rtol=1e-5,
    )


def test_a_few_shot_artifact_with_a_wrong_feature_count_is_refused(tmp_path) -> None:
    from predictors.fewshot import RidgeMap

    p = FewShotPredictor({GPU: _shipped(GPU)})
    p.ridge = RidgeMap([0.0] * 3, [1.0] * 3, [0.1] * 3, 0.0, 1.0)  # 3 weights, 5 features
    p.save(tmp_path / "bad")
    with pytest.raises(ValueError, match="3 weights for 5 features"):
        FewShotPredictor.load(tmp_path / "bad")


def test_spread_selection_covers_the_latency_axis_deterministically() -> None:
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(3, 1000)).cumsum(axis=0)  # correlated "devices"
    candidates = np.arange(1000)
    first = spread_selection(bank, candidates, 20, seed=4)
    assert first.tolist() == spread_selection(bank, candidates, 20, seed=4).tolist()
    assert len(set(first.tolist())) == 20
    x = bank.T - bank.T.mean(axis=0)
    pc = x @ np.linalg.svd(x, full_matrices=False)[2][0]
    ranks = np.argsort(np.argsort(pc))[first]
    # one model per twentieth of the axis: exactly one in each stratum of 50 ranks
    assert sorted(ranks // 50) == list(range(20))
    # with graph keys, a stratum skips a graph already picked when it has another one
    keys = [str(i // 2) for i in range(1000)]  # pairs of cells share a graph
    for seed in range(5):
        picked = spread_selection(bank, candidates, 50, seed=seed, graph_keys=keys)
        assert len({keys[i] for i in picked}) == 50
    with pytest.raises(TrainingError, match="cannot pick 30 models out of 20"):
        spread_selection(bank, candidates[:20], 30, seed=0)


def test_suggest_models_gives_distinct_valid_graphs() -> None:
    gpu = _latbench(GPU)
    bases = {GPU: _TableBase(np.where(np.isfinite(gpu), gpu, 1.0))}
    picked = suggest_models(20, bases, seed=1, exclude=[0])
    rows = architecture_rows()
    assert len(picked) == 20 and 0 not in picked
    assert all(rows[i]["valid"] for i in picked)
    assert len({rows[i]["canonical_key"] for i in picked}) == 20
    # spread: the fastest and the slowest twentieth of the cells are both represented
    lat, pool = gpu[picked], gpu[np.isfinite(gpu)]
    assert lat.min() <= np.quantile(pool, 0.05) and lat.max() >= np.quantile(pool, 0.95)
