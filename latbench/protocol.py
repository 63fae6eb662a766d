"""The timing protocol of the paper (BRP-NAS §6) and a runner that applies it to a callable.

Protocol: run the model N times at batch 1 (N = 1000 on desktop/embedded devices, 10 on mobile),
split the runs into consecutive groups of 10, and in each group keep the values within [Q1, Q3] and
average them; over the group averages keep the values within [Q1, Q3] again and average: that is the
latency. The raw timings and their statistics are kept next to it.

Choices this module makes where the paper is silent (tests pin them down):

* Quartiles are numpy's default ``linear`` percentiles: with ``n`` sorted values ``x[0..n-1]``,
  Q1 is at position ``0.25 * (n - 1)`` and Q3 at ``0.75 * (n - 1)``, interpolated linearly between the
  neighbours. For a group of 10 that is Q1 = x[2] + 0.25 (x[3] - x[2]) and Q3 = x[6] + 0.75 (x[7] - x[6]).
  "Within" is inclusive: ``Q1 <= v <= Q3``.
* With 2 distinct values both quartiles fall strictly between them and nothing is "within"; the set
  then keeps every value (for 2 values, their mean is also the median). With 3 or more values the
  quartiles are at least one position apart, so some value always lies within them.
* A trailing partial group (``runs % group_size`` values) is dropped when there are full groups, as its
  quartiles would rest on fewer values than the others'; when it is the only group (fewer runs than
  ``group_size``, e.g. a short check) it is used. Dropped values still count in the raw statistics.
* The raw statistics (median, IQR, std (population, ddof=0), min, max, mean) are over all raw values.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_RUNS = 1000  # desktop and embedded devices
MOBILE_RUNS = 10  # phones (paper §6)
DEFAULT_WARMUP = 10
DEFAULT_GROUP_SIZE = 10


@dataclass(frozen=True)
class ProtocolParams:
    """How many runs to time and how: ``runs`` timed runs after ``warmup`` untimed ones, in groups of
    ``group_size`` (a fresh input per group), sleeping ``pause_s`` seconds between groups."""

    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    group_size: int = DEFAULT_GROUP_SIZE
    pause_s: float = 0.0

    def __post_init__(self) -> None:
        _check_int("runs", self.runs, minimum=1)
        _check_int("warmup", self.warmup, minimum=0)
        _check_int("group_size", self.group_size, minimum=1)
        if isinstance(self.pause_s, bool) or not isinstance(self.pause_s, int | float):
            raise ValueError(f"pause_s must be a number of seconds, got {self.pause_s!r}")
        if not math.isfinite(self.pause_s) or self.pause_s < 0:
            raise ValueError(f"pause_s must be a finite number >= 0, got {self.pause_s!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "warmup": self.warmup,
            "group_size": self.group_size,
            "pause_s": self.pause_s,
        }


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class ProtocolResult:
    """The protocol's latency and the statistics of the raw timings (all in milliseconds)."""

    latency_ms: float
    runs: int  # raw timings given
    group_size: int
    groups: int  # groups used (a dropped trailing partial group is not counted)
    dropped: int  # raw timings of a dropped trailing partial group
    kept_per_group: tuple[int, ...]  # values within [Q1, Q3] in each group
    group_means_ms: tuple[float, ...]
    groups_kept: int  # group means within their [Q1, Q3]
    median_ms: float
    iqr_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    raw_ms: tuple[float, ...]

    @property
    def kept_total(self) -> int:
        return sum(self.kept_per_group)

    def to_dict(self, include_raw: bool = False) -> dict[str, Any]:
        """JSON-safe dict (plain floats and lists); the raw timings only when ``include_raw``."""
        out: dict[str, Any] = {
            "latency_ms": self.latency_ms,
            "runs": self.runs,
            "group_size": self.group_size,
            "groups": self.groups,
            "dropped": self.dropped,
            "kept_per_group": list(self.kept_per_group),
            "kept_total": self.kept_total,
            "group_means_ms": list(self.group_means_ms),
            "groups_kept": self.groups_kept,
            "median_ms": self.median_ms,
            "iqr_ms": self.iqr_ms,
            "std_ms": self.std_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
        }
        if include_raw:
            out["raw_ms"] = list(self.raw_ms)
        return out


def interquartile_mean(values: Sequence[float] | np.ndarray) -> tuple[float, int]:
    """Mean of the values within [Q1, Q3] (inclusive, linear quartiles) and how many were kept."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("interquartile_mean needs at least one value")
    q1, q3 = np.percentile(arr, [25.0, 75.0])
    kept = arr[(arr >= q1) & (arr <= q3)]
    if kept.size == 0:  # only possible with two distinct values (see module docstring)
        kept = arr
    return float(kept.mean()), int(kept.size)


def _validated(raw_ms: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        arr = np.asarray(raw_ms, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"raw_ms must be a sequence of numbers (milliseconds): {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"raw_ms must be a flat sequence of timings, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("raw_ms is empty: at least one timing is needed")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"raw_ms[{bad[0]}] is not finite ({arr[bad[0]]}); {bad.size} non-finite timing(s)")
    negative = np.flatnonzero(arr < 0)
    if negative.size:
        raise ValueError(f"raw_ms[{negative[0]}] is negative ({arr[negative[0]]}); {negative.size} negative timing(s)")
    return arr


def summarize(raw_ms: Sequence[float] | np.ndarray, group_size: int = DEFAULT_GROUP_SIZE) -> ProtocolResult:
    """Apply the protocol to raw timings (milliseconds, in the order they were taken)."""
    _check_int("group_size", group_size, minimum=1)
    arr = _validated(raw_ms)
    full = arr.size // group_size
    groups = full if full else 1  # a lone partial group is used (module docstring)
    used = arr.size if not full else full * group_size
    means: list[float] = []
    kept: list[int] = []
    for g in range(groups):
        mean, count = interquartile_mean(arr[g * group_size : min((g + 1) * group_size, used)])
        means.append(mean)
        kept.append(count)
    latency, groups_kept = interquartile_mean(means)
    q1, q3 = np.percentile(arr, [25.0, 75.0])
    return ProtocolResult(
        latency_ms=latency,
        runs=int(arr.size),
        group_size=group_size,
        groups=groups,
        dropped=int(arr.size - used),
        kept_per_group=tuple(kept),
        group_means_ms=tuple(means),
        groups_kept=groups_kept,
        median_ms=float(np.median(arr)),
        iqr_ms=float(q3 - q1),
        std_ms=float(arr.std()),
        min_ms=float(arr.min()),
        max_ms=float(arr.max()),
        mean_ms=float(arr.mean()),
        raw_ms=tuple(float(v) for v in arr),
    )


def time_callable(
    run: Callable[[np.ndarray], object],
    make_input: Callable[[], np.ndarray],
    params: ProtocolParams | None = None,
) -> ProtocolResult:
    """Time ``run`` with the protocol and summarise it (the result keeps the raw timings).

    ``run(x)`` must block until the result is ready (runtime adapters sync their outputs). Warm-up
    runs use their own input; each timed group gets a fresh ``make_input()`` (so no runtime can reuse
    a cached answer across groups). The garbage collector is off while timing, so a collection
    cannot land inside a run; its previous state is restored afterwards, also on error.
    """
    params = params or ProtocolParams()
    raw_ns: list[int] = []
    was_enabled = gc.isenabled()
    gc.collect()  # start clean so garbage from building the model is not collected mid-timing
    gc.disable()
    try:
        if params.warmup:
            x = make_input()
            for _ in range(params.warmup):
                run(x)
        clock = time.perf_counter_ns
        for start in range(0, params.runs, params.group_size):
            if start and params.pause_s:
                time.sleep(params.pause_s)
            x = make_input()
            for _ in range(min(params.group_size, params.runs - start)):
                t0 = clock()
                run(x)
                raw_ns.append(clock() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return summarize([ns / 1e6 for ns in raw_ns], group_size=params.group_size)
