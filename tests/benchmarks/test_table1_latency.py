"""benchmarks/table1_latency.py: the two noise ceilings on a synthetic device."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmarks._load import load_script


def test_heldout_ceiling_predicts_each_model_from_its_twins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_script("table1_latency")
    # groups: A = three near-equal timings, B = a pair 20% apart, C = a singleton, D = unmeasured
    keys = np.array(["A", "A", "A", "B", "B", "C", "D"])
    y = np.array([10.0, 10.1, 10.2, 5.0, 6.0, 7.0, np.nan])
    monkeypatch.setattr(bench, "canonical_keys", lambda: keys)
    held = bench.heldout_ceiling(y)
    assert held["models"] == 5  # the singleton and the unmeasured model do not count
    assert held["within_5pct"] == pytest.approx(60.0)  # A's three hit, B's pair misses
    assert held["within_10pct"] == pytest.approx(60.0)
    well_twinned = bench.heldout_ceiling(y, min_twins=2)  # only A's models have two measured twins
    assert well_twinned["models"] == 3 and well_twinned["within_5pct"] == pytest.approx(100.0)
    first = bench.ceiling(y)  # the ceiling: own timing in the median, the singleton a hit
    assert first["models"] == 6 and first["within_5pct"] == pytest.approx(100 * 4 / 6)


def test_denoised_labels_use_the_labelled_twins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_script("table1_latency")
    keys = np.array(["A", "A", "A", "B", "B", "C"])
    y = np.array([10.0, 11.0, 30.0, 5.0, 6.0, 7.0])
    monkeypatch.setattr(bench, "canonical_keys", lambda: keys)
    labelled = np.array([0, 1, 3, 5])  # A's third timing and B's second are test models
    out = bench.denoised_labels(y, labelled)
    # A's labelled pair shares its median; B and C have one labelled timing each; test timings stay as measured.
    np.testing.assert_allclose(out, [10.5, 10.5, 30.0, 5.0, 6.0, 7.0])
    assert y[0] == 10.0  # the measured latencies are not changed in place
    np.testing.assert_array_equal(bench.distinct_rows(np.array([4, 1, 0, 5, 2])), [4, 1, 5])  # B, A, C


def test_resolve_devices_orders_the_papers_six_first_and_names_unknown_devices() -> None:
    bench = load_script("table1_latency")
    from latbench.data import PAPER_DEVICES, load_latency

    every = bench.resolve_devices("all")
    assert every[: len(PAPER_DEVICES)] == list(PAPER_DEVICES)
    assert sorted(every) == sorted(d.name for d in load_latency().devices())
    assert bench.resolve_devices(f" {PAPER_DEVICES[1]} ,") == [PAPER_DEVICES[1]]
    with pytest.raises(ValueError, match="unknown devices \\['no_such_device'\\]"):
        bench.resolve_devices(f"{PAPER_DEVICES[0]},no_such_device")
    with pytest.raises(ValueError, match="unknown devices"):
        bench.resolve_devices(",")


def test_best_variant_is_picked_among_the_variants_run_on_the_most_splits() -> None:
    bench = load_script("table1_latency")

    def row(share: float, seeds: int) -> dict:
        cell = {"mean": share, "std": 0.0, "n": seeds}
        return {"seeds": list(range(seeds)), "within_5pct": cell, "within_10pct": cell}

    # the two-split variant has the best mean, but only the ten-split ones are comparable
    sized = {"gcn_prior": row(80.0, 10), "gcn_robust": row(78.0, 10), "gcn_prior_ens3": row(90.0, 2)}
    best = bench.best_vs_ceiling(sized, {"within_5pct": 84.0, "within_10pct": 95.0}, has_target=True)
    assert best["method"] == "gcn_prior" and best["seeds"] == 10
    assert best["gap_5pct"] == pytest.approx(4.0) and best["target_met"] is False


def test_ensemble_members_use_successive_training_seeds_and_combine_geometrically() -> None:
    bench = load_script("table1_latency")
    from latbench.data import load_latency
    from latbench.graph import encode_all_nb201
    from predictors.gcn import GCNConfig
    from predictors.latency import LatencyPredictor
    from predictors.regressor import TrainConfig

    enc = encode_all_nb201()
    y = np.asarray(load_latency().column("desktop_gpu_gtx_1080ti_fp32"), dtype=np.float64)
    tr, va, te = bench.split(np.flatnonzero(np.isfinite(y)), 40, seed=3)
    te = te[:200]
    data = [(enc.adjacency[i], enc.features[i], y[i]) for i in (tr, va, te)]
    gcn_cfg = GCNConfig(layers=2, hidden=16)
    train_cfg = TrainConfig(target="log", loss="huber", huber_delta=0.2, epochs=3, seed=5, jit_compile=False)
    pred, members, seconds = bench.ensemble_predictions(*data, gcn_cfg, train_cfg, "layerwise", 2)
    assert [m["seed"] for m in members] == [5, 6] and seconds > 0
    singles = []
    for seed in (5, 6):  # the same members trained on their own: the ensemble is their geometric mean
        model = LatencyPredictor(gcn_cfg, TrainConfig(**{**train_cfg.__dict__, "seed": seed}), prior="layerwise")
        model.fit(*data[0], val=data[1])
        singles.append(model.predict(data[2][0], data[2][1]))
    assert not np.allclose(singles[0], singles[1])  # the seeds really differ
    np.testing.assert_allclose(pred, np.sqrt(singles[0] * singles[1]), rtol=1e-4)


def test_window_point_finds_the_densest_window_of_skewed_timings() -> None:
    bench = load_script("table1_latency")
    timings = np.array([10.0, 10.0, 10.0, 10.0, 11.2, 11.4, 11.6, 12.5, 13.0])  # a floor at 10, a tail above

    def hits(point: float) -> int:
        return int(np.sum(np.abs(point / timings - 1.0) <= 0.05 + 1e-12))

    point = bench.window_point(timings, 0.05)
    assert point == pytest.approx(10.5)
    assert hits(point) == 4 and hits(float(np.median(timings))) == 3  # the median (11.2) catches fewer


def test_matched_ceiling_carries_each_latency_bins_noise_to_the_models_without_twins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = load_script("table1_latency")
    # A: a fast network timed 5 times, no scatter; B: a slow one, one of its 5 timings 30% off; the rest are
    # networks timed once: two fast, four slow.
    keys = np.array(["A"] * 5 + ["B"] * 5 + ["G", "C", "D", "E", "F", "H"])
    y = np.array([1.0] * 5 + [10.0, 10.0, 10.0, 10.0, 13.0] + [1.1, 9.0, 11.0, 12.0, 14.0, 15.0])
    monkeypatch.setattr(bench, "canonical_keys", lambda: keys)
    (est,) = bench.matched_ceilings(y, min_twins=(4,), bins=2, min_models=1)
    # The fast bin (A, G, C) scores 100%, the slow bin (B, D, E, F, H) B's 80%: weighted by all 16 models.
    assert est["bin_models"] == [5, 5] and est["estimating_models"] == 10
    assert est["within_5pct"] == pytest.approx(100 * (7 + 9 * 0.8) / 16)
    assert set(est["within_5pct_by_point"]) == {"median", "window"}
    # Only the twinned models count in the held-out ceiling: blind to where the untwinned models lie.
    assert bench.heldout_ceiling(y, min_twins=4)["within_5pct"] == pytest.approx(90.0)
    with pytest.raises(ValueError, match="no latency bin has 6 models with 4\\+ twins"):
        bench.matched_ceilings(y, min_twins=(4,), bins=2, min_models=6)


def test_target_above_perfect_only_when_above_every_estimate() -> None:
    bench = load_script("table1_latency")
    ceil = {"within_5pct": 90.0, "within_10pct": 96.0}  # target shares: 87 and 95
    assert bench.target_above_perfect(ceil, [{"within_5pct": 86.0, "within_10pct": 99.0}])
    assert not bench.target_above_perfect(
        ceil, [{"within_5pct": 86.0, "within_10pct": 99.0}, {"within_5pct": 88.0, "within_10pct": 99.0}]
    )
    assert bench.target_above_perfect(ceil, [{"within_5pct": 99.0, "within_10pct": 94.5}])


def test_sparse_latency_bins_borrow_the_nearest_populated_bin_below_first() -> None:
    bench = load_script("table1_latency")
    assert bench.rate_sources(np.array([40, 5, 50, 10, 0]), 30) == [0, 0, 2, 2, 2]
    assert bench.rate_sources(np.array([0, 3, 30]), 30) == [2, 2, 2]  # nothing below: the nearest above
