"""Prediction metrics: shares within ±x%, RMSE, Spearman ρ, Kendall τ-b, true ranks of a predicted top-K.

Implemented with NumPy only (no SciPy dependency): Spearman is the Pearson correlation of average
ranks; Kendall τ-b uses Knight's O(n log n) method (sort by (x, y), count ties and the discordant
pairs as inversions of y); both agree with the textbook definitions on ties (tests compare them to
brute force).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_TOLERANCES: tuple[float, ...] = (0.01, 0.05, 0.10)


def _pair(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred and true differ in length: {p.shape[0]} vs {t.shape[0]}")
    if p.size == 0:
        raise ValueError("no values to score")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise ValueError("pred and true must be finite (drop missing measurements first)")
    return p, t


def within(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float], tolerance: float) -> float:
    """Share (0..1) of predictions with ``|pred / true - 1| <= tolerance``."""
    p, t = _pair(pred, true)
    if np.any(t == 0):
        raise ValueError("relative error is undefined where the true value is 0")
    # A hair of slack so that e.g. 1.1 / 1.0 - 1 (0.10000000000000009) counts as within 10%.
    return float(np.mean(np.abs(p / t - 1.0) <= tolerance + 1e-12))


def within_shares(
    pred: np.ndarray | Sequence[float],
    true: np.ndarray | Sequence[float],
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
) -> dict[str, float]:
    """``{"within_1pct": .., "within_5pct": .., "within_10pct": ..}`` (shares in percent, 0..100)."""
    return {f"within_{round(x * 100):d}pct": 100.0 * within(pred, true, x) for x in tolerances}


def rmse(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> float:
    p, t = _pair(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def rankdata(x: np.ndarray | Sequence[float]) -> np.ndarray:
    """1-based ranks, ties get the average of the ranks they span (as scipy's 'average')."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.concatenate([[True], sorted_a[1:] != sorted_a[:-1]])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    ends = np.concatenate([first[1:], [a.size]])
    avg = (first + ends + 1) / 2.0  # mean of 1-based ranks first+1 .. end
    ranks = np.empty(a.size)
    ranks[order] = avg[group]
    return ranks


def spearman(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Spearman's ρ; NaN when one side is constant."""
    a, b = _pair(x, y)
    ra, rb = rankdata(a) - (a.size + 1) / 2.0, rankdata(b) - (b.size + 1) / 2.0
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb / denom) if denom > 0 else math.nan


def _tie_pairs(sorted_values: np.ndarray) -> int:
    """Number of tied pairs in a sorted array: sum over runs of t(t-1)/2."""
    if sorted_values.size == 0:
        return 0
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1], [True]]))
    runs = np.diff(starts)
    return int(np.sum(runs * (runs - 1) // 2))


def _inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j], by a bottom-up merge sort with NumPy merges."""
    a = np.asarray(values)
    n = a.size
    count = 0
    width = 1
    while width < n:
        merged = np.empty_like(a)
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            left, right = a[lo:mid], a[mid:hi]
            if right.size and left.size:
                # each right element jumps over the left elements strictly greater than it
                count += int(np.sum(left.size - np.searchsorted(left, right, side="right")))
            merged[lo:hi] = np.sort(a[lo:hi], kind="mergesort") if right.size else left
        a = merged
        width *= 2
    return count


def kendall_tau(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Kendall's τ-b (accounts for ties in either variable); NaN when one side is constant."""
    a, b = _pair(x, y)
    n = a.size
    order = np.lexsort((b, a))  # by a, then b
    a_s, b_s = a[order], b[order]
    n0 = n * (n - 1) // 2
    n1 = _tie_pairs(a_s)
    joint = np.concatenate([[True], (a_s[1:] != a_s[:-1]) | (b_s[1:] != b_s[:-1]), [True]])
    runs = np.diff(np.flatnonzero(joint))
    n3 = int(np.sum(runs * (runs - 1) // 2))
    n2 = _tie_pairs(np.sort(b))
    swaps = _inversions(b_s)
    denom = math.sqrt(float(n0 - n1) * float(n0 - n2))
    if denom == 0:
        return math.nan
    return float((n0 - n1 - n2 + n3 - 2 * swaps) / denom)


def topk_true_ranks(
    pred: np.ndarray | Sequence[float],
    true: np.ndarray | Sequence[float],
    k: int,
    higher_is_better: bool = True,
) -> np.ndarray:
    """True ranks (1 = best) of the K models the prediction ranks best, in predicted order.

    E.g. ``topk_true_ranks(pred_acc, true_acc, 1)`` is the true rank of the predicted best model.
    Ties in ``true`` share the best (lowest) rank they span.
    """
    p, t = _pair(pred, true)
    if not 1 <= k <= p.size:
        raise ValueError(f"k must be in 1..{p.size}, got {k}")
    sign = -1.0 if higher_is_better else 1.0
    picked = np.argsort(sign * p, kind="mergesort")[:k]
    sorted_true = np.sort(sign * t)
    return np.searchsorted(sorted_true, sign * t[picked], side="left") + 1


def summary(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> dict[str, float]:
    """All regression metrics at once (shares in percent)."""
    out = within_shares(pred, true)
    out.update(rmse=rmse(pred, true), spearman=spearman(pred, true), kendall=kendall_tau(pred, true))
    return out
