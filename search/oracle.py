"""The "training" oracle: what a search pays to learn a model's accuracy, and what it reports.

Training a model is reading its accuracy from the shipped NB201 table (``latbench.data``):

* what the search **sees** is the CIFAR-100 *validation* accuracy of one training seed drawn at random
  among those NB201 ran for that model (777, 888 and, for some, 999) — SGD noise, as in the paper; or,
  with ``fixed_seed=888``, always seed 888 (noise-free, what BRP-NAS trains its predictors on);
* what is **reported** is the *test* accuracy (CIFAR-100 test half, official mean over seeds) of the
  model the search selects by the validation accuracy it saw. The maximum test accuracy among the
  models trained so far is reported too (the paper's plots use that one); outputs name which is which.

:class:`TrainingOracle` does the budget accounting: every training costs one model from ``total``;
in cache mode (default) a model already trained is answered from the cache for free and never trained
twice. Each training is appended to the trace, in order, with whether the model counts as found (its
*measured* latency is under the limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from search.space import Space, nb201_space

SEEDS: tuple[int, ...] = (777, 888, 999)
DATASET = "cifar100"
SELECTED = "selected"  # curve name: test accuracy of the model with the best validation accuracy seen
MAX_TEST = "max_test"  # curve name: best test accuracy among the models trained (the paper's plots)


class BudgetExhausted(RuntimeError):
    """A search asked to train a model after spending its whole budget."""


class AccuracyOracle:
    """Per-seed validation and seed-mean test accuracies (percent) of every NB201 index."""

    def __init__(self, table: Any | None = None, fixed_seed: int | None = None, dataset: str = DATASET) -> None:
        from latbench.data import load_accuracy

        table = table if table is not None else load_accuracy()
        if fixed_seed is not None and fixed_seed not in SEEDS:
            raise ValueError(f"fixed_seed must be one of {', '.join(map(str, SEEDS))} or None, got {fixed_seed}")
        self.dataset = dataset
        self.fixed_seed = fixed_seed
        self.valid = np.stack([np.asarray(table.column(dataset, "valid", s), dtype=np.float64) for s in SEEDS], axis=1)
        self.test = np.asarray(table.column(dataset, "test", "mean"), dtype=np.float64)
        self.available = ~np.isnan(self.valid)
        if fixed_seed is not None:
            column = SEEDS.index(fixed_seed)
            missing = ~self.available[:, column]
            if missing.any():
                raise ValueError(f"seed {fixed_seed} has no {dataset} accuracy for {int(missing.sum())} archs")

    @property
    def mode(self) -> str:
        return "random-seed" if self.fixed_seed is None else f"seed-{self.fixed_seed}"

    def read(self, index: int, rng: np.random.Generator) -> tuple[float, int]:
        """(validation accuracy, seed) of one "training" of ``index``."""
        if self.fixed_seed is not None:
            seed = self.fixed_seed
        else:
            seeds = [s for s, ok in zip(SEEDS, self.available[index], strict=True) if ok]
            seed = seeds[int(rng.integers(len(seeds)))]
        return float(self.valid[index, SEEDS.index(seed)]), seed


@dataclass(frozen=True)
class TraceEntry:
    """One trained model, in training order."""

    step: int  # 1-based: the number of models trained once this one is
    index: int
    arch_str: str
    valid_acc: float  # what the search saw (one seed's validation accuracy)
    seed: int  # that seed
    test_acc: float  # CIFAR-100 test accuracy, mean over seeds (what is reported)
    found: bool  # measured latency under the limit (always True without a limit)
    measured_ms: float | None
    predicted_ms: float | None  # what the search's latency source said (None without a limit)
    phase: str  # algorithm-specific: e.g. "brp:iter2:top", "ae:init"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LatencyCheck:
    """Whether a model counts as found: its measured latency is under the limit (no limit: any valid)."""

    def __init__(self, limit_ms: float | None = None, measured: Any | None = None) -> None:
        if limit_ms is not None and measured is None:
            raise ValueError("a latency limit needs a measured latency source to decide what counts as found")
        self.limit_ms = limit_ms
        self.measured = measured

    def measured_ms(self, index: int) -> float | None:
        if self.measured is None:
            return None
        value = float(self.measured.latency_ms([index])[0])
        return None if np.isnan(value) else value

    def found(self, index: int, valid: bool) -> tuple[bool, float | None]:
        ms = self.measured_ms(index)
        if not valid:
            return False, ms
        if self.limit_ms is None:
            return True, ms
        return ms is not None and ms <= self.limit_ms, ms


class TrainingOracle:
    """Budget, cache and trace around an :class:`AccuracyOracle` for one search run."""

    def __init__(
        self,
        accuracy: AccuracyOracle,
        total: int,
        rng: np.random.Generator,
        *,
        cache: bool = True,
        check: LatencyCheck | None = None,
        predicted_ms: Callable[[int], float | None] | None = None,
        space: Space | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if total < 1:
            raise ValueError(f"the budget (total trained models) must be >= 1, got {total}")
        self.accuracy = accuracy
        self.total = total
        self.rng = rng
        self.cache = cache
        self.check = check or LatencyCheck()
        self.predicted_ms = predicted_ms
        self.space = space or nb201_space()
        self.progress = progress
        self.trace: list[TraceEntry] = []
        self.cache_hits = 0
        self._seen: dict[int, float] = {}

    # -- budget ----------------------------------------------------------------------------------
    @property
    def spent(self) -> int:
        return len(self.trace)

    @property
    def remaining(self) -> int:
        return self.total - self.spent

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.total

    def trained(self, index: int) -> bool:
        return index in self._seen

    @property
    def trained_indices(self) -> list[int]:
        return list(self._seen)

    # -- training ----------------------------------------------------------------------------------
    def train(self, index: int, phase: str = "") -> float:
        """Validation accuracy of ``index`` as the search sees it; costs one model unless cached."""
        index = int(index)
        if self.cache and index in self._seen:
            self.cache_hits += 1
            return self._seen[index]
        if self.exhausted:
            raise BudgetExhausted(f"budget of {self.total} trained models is spent; cannot train index {index}")
        valid_acc, seed = self.accuracy.read(index, self.rng)
        found, measured = self.check.found(index, bool(self.space.valid[index]))
        predicted = self.predicted_ms(index) if self.predicted_ms is not None else None
        self.trace.append(
            TraceEntry(
                step=self.spent + 1,
                index=index,
                arch_str=self.space.arch_str(index),
                valid_acc=valid_acc,
                seed=seed,
                test_acc=float(self.accuracy.test[index]),
                found=found,
                measured_ms=measured,
                predicted_ms=predicted,
                phase=phase,
            )
        )
        self._seen[index] = valid_acc
        if self.progress is not None:
            self.progress(self.spent, self.total)
        return valid_acc


# -- what is reported ------------------------------------------------------------------------------
def selected_entry(trace: list[TraceEntry]) -> TraceEntry | None:
    """The found model with the best validation accuracy seen (earliest on ties): the search's pick."""
    best: TraceEntry | None = None
    for entry in trace:
        if entry.found and (best is None or entry.valid_acc > best.valid_acc):
            best = entry
    return best


def best_test_entry(trace: list[TraceEntry]) -> TraceEntry | None:
    """The found model with the highest test accuracy among those trained (earliest on ties)."""
    best: TraceEntry | None = None
    for entry in trace:
        if entry.found and (best is None or entry.test_acc > best.test_acc):
            best = entry
    return best


def curves(trace: list[TraceEntry], length: int | None = None) -> dict[str, np.ndarray]:
    """Best-so-far curves: value [t-1] after t trained models; NaN until a model is found.

    ``selected``: test accuracy of the found model with the best validation accuracy so far;
    ``max_test``: highest test accuracy among the found models so far. Past the end of the trace
    (a search that stopped early) the last value is carried on.
    """
    n = length if length is not None else len(trace)
    selected = np.full(n, np.nan)
    max_test = np.full(n, np.nan)
    best_valid, sel, top = -np.inf, np.nan, np.nan
    for t in range(n):
        if t < len(trace):
            entry = trace[t]
            if entry.found:
                if entry.valid_acc > best_valid:
                    best_valid, sel = entry.valid_acc, entry.test_acc
                top = entry.test_acc if np.isnan(top) else max(top, entry.test_acc)
        selected[t], max_test[t] = sel, top
    return {SELECTED: selected, MAX_TEST: max_test}
