"""search.oracle_nas: the Fig. S3 quantities on hand-made cases, and on LatBench."""

from __future__ import annotations

import numpy as np
import pytest

from search.oracle_nas import limits_range, oracle_nas, summarize


def test_hand_made_cases() -> None:
    # model:        0     1     2     3
    accuracy = np.array([73.0, 72.0, 71.0, 70.0])
    measured = np.array([6.0, 4.0, 3.0, 2.0])
    predicted = np.array([4.5, 5.5, 3.0, 2.0])  # model 0 looks fast (FP), model 1 looks slow (FN)
    out = oracle_nas(predicted, measured, accuracy, [5.0, 7.0, 2.5, 1.0])
    # 5 ms: feasible {1,2,3}, best 1 (72); claimed {0,2,3}, pick 0 (73) breaks the limit.
    assert out["false_positive"][0] == 1.0 and out["false_negative"][0] == 1.0
    assert out["over_claimed_accuracy"][0] == pytest.approx(1.0) and out["missed_accuracy"][0] == 0.0
    assert (out["fp_models"][0], out["fn_models"][0], out["pick"][0], out["best"][0]) == (1, 1, 0, 1)
    # 7 ms: everything feasible and claimed: the oracle is exact.
    assert out["false_positive"][1] == 0.0 and out["false_negative"][1] == 0.0
    assert out["missed_accuracy"][1] == 0.0 and out["over_claimed_accuracy"][1] == 0.0
    # 2.5 ms: only model 3 either way.
    assert out["pick"][2] == 3 and out["missed_accuracy"][2] == 0.0
    # 1 ms: nothing feasible: no pick, NaN gaps, counts still defined.
    assert np.isnan(out["missed_accuracy"][3]) and out["fp_models"][3] == 0


def test_missed_accuracy_when_the_best_is_predicted_too_slow() -> None:
    accuracy = np.array([73.0, 71.5])
    measured = np.array([3.0, 3.0])
    predicted = np.array([6.0, 3.0])
    out = oracle_nas(predicted, measured, accuracy, [5.0])
    assert out["false_negative"][0] == 1.0 and out["false_positive"][0] == 0.0
    assert out["missed_accuracy"][0] == pytest.approx(1.5) and out["over_claimed_accuracy"][0] == 0.0


def test_perfect_predictor_has_no_errors_on_latbench() -> None:
    from latbench.data import load_accuracy, load_latency

    measured = load_latency().column("desktop_gpu_gtx_1080ti_fp32")
    accuracy = load_accuracy().column("cifar100", "test", "mean")
    out = oracle_nas(measured, measured, accuracy, limits_range(1.0, 7.0, 0.1))
    summary = summarize(out)
    assert summary["false_positive_rate"] == 0.0 and summary["false_negative_rate"] == 0.0
    assert summary["mean_missed_accuracy"] == 0.0 and summary["mean_over_claimed_accuracy"] == 0.0
    noisy = measured * np.random.default_rng(0).uniform(0.8, 1.2, measured.shape)
    worse = summarize(oracle_nas(noisy, measured, accuracy, limits_range(1.0, 7.0, 0.1)))
    assert worse["mean_fp_models"] > 100 and worse["mean_fn_models"] > 100


def test_limits_range_and_input_checks() -> None:
    grid = limits_range(1.0, 7.0, 0.1)
    assert grid.size == 61 and grid[0] == 1.0 and grid[-1] == 7.0 and grid[13] == 2.3
    with pytest.raises(ValueError, match="aligned"):
        oracle_nas(np.ones(3), np.ones(2), np.ones(3), [1.0])
    with pytest.raises(ValueError, match="no model"):
        oracle_nas(np.full(2, np.nan), np.ones(2), np.ones(2), [1.0])
