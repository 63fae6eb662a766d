"""Oracle-NAS analysis (paper S1.3, Fig. S3): what a latency predictor alone costs a search.

An *oracle NAS* knows every model's accuracy exactly and uses a latency predictor to honour a limit:
it returns the most accurate model whose **predicted** latency is under the limit. Comparing its pick
with the most accurate model whose **measured** latency is under the limit isolates the predictor's
effect. For each limit L (ms):

* ``false_positive``: the pick's measured latency is over L (the search returns a model that breaks
  the limit); ``fp_models`` counts all models predicted under L but measured over it.
* ``false_negative``: the best truly feasible model was predicted over L (the search cannot find it);
  ``fn_models`` counts all models measured under L but predicted over it.
* ``missed_accuracy`` = max(0, best feasible accuracy − pick's accuracy): accuracy lost;
* ``over_claimed_accuracy`` = max(0, pick's accuracy − best feasible accuracy): accuracy claimed that
  no model under the limit has (only possible when the pick breaks the limit).

Missed and over-claimed are the negative and positive parts of ``acc(pick) − best feasible``. Limits
under which no model is feasible or none is predicted feasible give NaN gaps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FIELDS = (
    "false_positive",
    "false_negative",
    "missed_accuracy",
    "over_claimed_accuracy",
    "fp_models",
    "fn_models",
    "pick",
    "best",
)


def oracle_nas(
    predicted: np.ndarray, measured: np.ndarray, accuracy: np.ndarray, limits: np.ndarray | list[float]
) -> dict[str, np.ndarray]:
    """Fig. S3 quantities for each limit (arrays aligned with ``limits``); models with a NaN are skipped."""
    pred = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(measured, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    if not pred.shape == true.shape == acc.shape or pred.ndim != 1:
        shapes = f"{pred.shape}, {true.shape}, {acc.shape}"
        raise ValueError(f"predicted, measured and accuracy must be 1-D and aligned: {shapes}")
    lims = np.asarray(limits, dtype=np.float64).reshape(-1)
    usable = np.isfinite(pred) & np.isfinite(true) & np.isfinite(acc)
    if not usable.any():
        raise ValueError("no model has a predicted latency, a measured latency and an accuracy")
    # Sort by accuracy once: the best model of any subset is its first member in this order.
    order = np.flatnonzero(usable)[np.argsort(-acc[usable], kind="stable")]
    p, t, a = pred[order], true[order], acc[order]
    out: dict[str, np.ndarray] = {name: np.full(lims.shape, np.nan) for name in FIELDS}
    for k, limit in enumerate(lims):
        feasible = t <= limit
        claimed = p <= limit
        out["fp_models"][k] = np.sum(claimed & ~feasible)
        out["fn_models"][k] = np.sum(feasible & ~claimed)
        if not feasible.any() or not claimed.any():
            continue
        best = int(np.argmax(feasible))  # first (most accurate) feasible model
        pick = int(np.argmax(claimed))
        gap = a[pick] - a[best]
        out["false_positive"][k] = float(not feasible[pick])
        out["false_negative"][k] = float(not claimed[best])
        out["missed_accuracy"][k] = max(0.0, -gap)
        out["over_claimed_accuracy"][k] = max(0.0, gap)
        out["pick"][k], out["best"][k] = order[pick], order[best]
    return out


def summarize(curves: dict[str, np.ndarray]) -> dict[str, Any]:
    """Means over the limits where the oracle could pick (NaN-skipping): rates and mean gaps."""

    def mean(name: str) -> float | None:
        values = curves[name][np.isfinite(curves[name])]
        return float(values.mean()) if values.size else None

    return {
        "false_positive_rate": mean("false_positive"),
        "false_negative_rate": mean("false_negative"),
        "mean_missed_accuracy": mean("missed_accuracy"),
        "mean_over_claimed_accuracy": mean("over_claimed_accuracy"),
        "mean_fp_models": mean("fp_models"),
        "mean_fn_models": mean("fn_models"),
    }


def limits_range(start: float = 1.0, stop: float = 7.0, step: float = 0.1) -> np.ndarray:
    """Inclusive grid of limits, rounded so that 0.1 steps do not drift (1.0, 1.1, ..., 7.0)."""
    if step <= 0 or stop < start:
        raise ValueError(f"need step > 0 and stop >= start, got {start}, {stop}, {step}")
    count = round((stop - start) / step) + 1
    return np.round(start + step * np.arange(count), 10)
