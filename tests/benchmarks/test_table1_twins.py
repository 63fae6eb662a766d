"""benchmarks/table1_latency.twins_medians (used by table1_noise.py): the model's own timing is left out."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmarks._load import load_script


def test_twins_median_leaves_the_own_timing_out_and_counts_measured_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    table1 = load_script("table1_latency")
    # groups: A = four timings (one far off), B = a pair, C = a singleton, A's fifth member unmeasured
    keys = np.array(["A", "A", "A", "A", "B", "B", "C", "A"])
    y = np.array([10.0, 10.2, 10.4, 20.0, 5.0, 6.0, 7.0, np.nan])
    monkeypatch.setattr(table1, "canonical_keys", lambda: keys)
    med, count = table1.twins_medians(y, np.array([0, 3, 4, 6]))
    assert count.tolist() == [3, 3, 1, 0]  # the unmeasured model is no twin
    assert med[0] == pytest.approx(10.4)  # median of 10.2, 10.4, 20.0: not its own 10.0
    assert med[1] == pytest.approx(10.2)  # median of the other three: the outlier's own 20.0 left out
    assert med[2] == pytest.approx(6.0)
    assert np.isnan(med[3])


def test_twin_deviations_are_log_offsets_from_groups_of_enough_timings() -> None:
    noise = load_script("table1_noise")
    keys = np.array(["A"] * 5 + ["B"] * 3 + ["A"])
    y = np.array([10.0, 10.0, 10.0, 10.0, 20.0, 5.0, 5.0, 6.0, np.nan])
    dev = noise.twin_deviations(y, keys, min_group=5)
    mean_log = np.mean(np.log([10, 10, 10, 10, 20]))
    np.testing.assert_allclose(dev[:5], np.log(y[:5]) - mean_log)
    assert np.isnan(dev[5:]).all()  # B has 3 timings only; the unmeasured A model has none


def test_adjusted_r2_separates_an_explaining_feature_from_noise() -> None:
    noise = load_script("table1_noise")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    target = 0.8 * x[:, 0] + 0.2 * rng.normal(size=2000)
    assert noise.adjusted_r2(target, x) > 0.9
    assert abs(noise.adjusted_r2(target, rng.normal(size=(2000, 30)))) < 0.01
    # each edge of the unpruned cell one-hot (6 x 5) and the index: one row per NB201 cell
    feats = noise.raw_cell_features()
    assert feats.shape == (15625, 31) and (feats[:, :30].sum(1) == 6).all()


def test_noise_summary_splits_test_models_by_whether_their_graph_was_trained_on() -> None:
    noise = load_script("table1_noise")
    shares = {"within_1pct": 30.0, "within_5pct": 90.4, "within_10pct": 99.0}
    unit = {
        "device": "dev",
        "seed": 0,
        "n_test": 12,
        "all_test_models": shares,
        "bins": {},
        "by_training_graph": {
            "in training": {"models": 7, "vs_own_timing": shares, "log_error_sd_pct": 3.08},
            "not in training": {
                "models": 5,
                "vs_own_timing": {**shares, "within_5pct": 79.2},
                "log_error_sd_pct": 4.55,
            },
        },
    }
    old_unit = {k: v for k, v in unit.items() if k != "by_training_graph"}  # units from before the split
    text = noise.render_md({"units": [unit, old_unit]})
    assert "| dev | 0 | in training | 7 | 30.0 / 90.4 / 99.0 | 3.08 |" in text
    assert "| dev | 0 | not in training | 5 | 30.0 / 79.2 / 99.0 | 4.55 |" in text
    assert "not in training" not in noise.render_md({"units": [old_unit]})
