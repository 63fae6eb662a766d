import math

import numpy as np
import pytest

from predictors import metrics


def test_within_counts_relative_error_on_both_sides():
    true = [10.0, 10.0, 10.0, 10.0, 10.0]
    pred = [10.05, 9.5, 11.0, 8.9, 10.0]  # 0.5%, 5%, 10%, 11%, 0%
    assert metrics.within(pred, true, 0.01) == pytest.approx(2 / 5)
    assert metrics.within(pred, true, 0.05) == pytest.approx(3 / 5)
    assert metrics.within(pred, true, 0.10) == pytest.approx(4 / 5)
    shares = metrics.within_shares(pred, true)
    assert shares == pytest.approx({"within_1pct": 40.0, "within_5pct": 60.0, "within_10pct": 80.0})


def test_rmse_hand_case():
    assert metrics.rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(math.sqrt(4 / 3))


def test_rankdata_averages_ties():
    assert metrics.rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_hand_cases():
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x 1,2,3,4 vs y 1,3,2,4: 1 - 6*2/(4*15) = 0.8
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))


def test_kendall_hand_cases():
    assert metrics.kendall_tau([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert metrics.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of 6: (5 - 1) / 6
    assert metrics.kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    # tau-b with a tie in x: pairs (1,2)(1,3)(2,3) concordant-ish: x=[1,1,2], y=[1,2,3]
    # concordant 2, discordant 0, ties only in x: 1 -> 2 / sqrt(2 * 3)
    assert metrics.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


def _brute_tau_b(x, y):
    n = len(x)
    c = d = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            c += sx * sy > 0
            d += sx * sy < 0
            tx += sx == 0 and sy != 0
            ty += sy == 0 and sx != 0
    return (c - d) / math.sqrt((c + d + tx) * (c + d + ty))


def test_kendall_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(3, 40))
        x, y = rng.integers(0, 6, n).astype(float), rng.integers(0, 6, n).astype(float)
        if len(set(x)) == 1 or len(set(y)) == 1:
            continue
        assert metrics.kendall_tau(x, y) == pytest.approx(_brute_tau_b(x, y), abs=1e-12)


def test_inversions_hand_case():
    assert metrics._inversions(np.array([3, 1, 2, 5, 4])) == 3


def test_topk_true_ranks():
    true = np.array([0.9, 0.5, 0.7, 0.1])  # true ranks (higher better): 1, 3, 2, 4
    pred = np.array([0.2, 0.8, 0.6, 0.4])  # predicted order: idx 1, 2, 3, 0
    assert metrics.topk_true_ranks(pred, true, 2).tolist() == [3, 2]
    assert metrics.topk_true_ranks(pred, true, 4).tolist() == [3, 2, 4, 1]
    # lower is better (latency): predicted best is idx 0 (0.2), whose true rank among ascending is 4
    assert metrics.topk_true_ranks(pred, true, 1, higher_is_better=False).tolist() == [4]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.rmse([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        metrics.within([np.nan], [1.0], 0.1)
    with pytest.raises(ValueError, match="k must be"):
        metrics.topk_true_ranks([1.0, 2.0], [1.0, 2.0], 3)
