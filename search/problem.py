"""What every search algorithm shares: the latency filter, the budget, the seeding and the result.

A :class:`Problem` is one search setting (space, accuracy oracle, optional latency limit with the
latency source the search *believes* and the measured one that decides what counts as found). Each
algorithm calls :meth:`Problem.start` for a run — a :class:`~search.oracle.TrainingOracle` holding the
budget, and the algorithm's own random generator — and :meth:`Problem.finish` to wrap the trace in a
:class:`SearchResult`.

Seeding: one integer seed fixes a run. It is split (``numpy.random.SeedSequence``) into independent
streams for the accuracy noise and for the algorithm, so two algorithms run with the same seed see
independent draws, and the same algorithm with the same seed repeats exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.latency import LatencySource
from search.oracle import (
    MAX_TEST,
    SELECTED,
    AccuracyOracle,
    LatencyCheck,
    TraceEntry,
    TrainingOracle,
    best_test_entry,
    curves,
    selected_entry,
)
from search.space import Space, nb201_space


class LatencyFilter:
    """What a search may train: valid cells whose latency, as the search's source predicts it, is under the limit.

    Without a limit every valid cell is a candidate. With one, the source is asked once for all valid
    cells (one batch / one request) and the answer is kept.
    """

    def __init__(self, limit_ms: float | None = None, source: LatencySource | None = None, space: Space | None = None):
        if limit_ms is not None:
            if not np.isfinite(limit_ms) or limit_ms <= 0:
                raise ValueError(f"the latency limit must be a positive number of ms, got {limit_ms}")
            if source is None:
                raise ValueError("a latency limit needs a latency source to filter candidates")
        self.limit_ms = limit_ms
        self.source = source
        self.space = space or nb201_space()
        self._predicted: np.ndarray | None = None
        self._mask: np.ndarray | None = None

    @property
    def predicted(self) -> np.ndarray | None:
        """Predicted latency (ms) of every index (NaN for invalid cells), or None without a source."""
        if self.source is None:
            return None
        if self._predicted is None:
            values = np.full(self.space.size, np.nan)
            valid = self.space.valid_indices
            values[valid] = self.source.latency_ms(valid)
            values.setflags(write=False)
            self._predicted = values
        return self._predicted

    def predicted_ms(self, index: int) -> float | None:
        predicted = self.predicted
        if predicted is None or np.isnan(predicted[index]):
            return None
        return float(predicted[index])

    @property
    def mask(self) -> np.ndarray:
        """Admissible indices as a boolean mask over the space."""
        if self._mask is None:
            mask = self.space.valid.copy()
            if self.limit_ms is not None:
                predicted = self.predicted
                assert predicted is not None
                with np.errstate(invalid="ignore"):
                    mask &= predicted <= self.limit_ms
            mask.setflags(write=False)
            self._mask = mask
        return self._mask

    def admissible(self, index: int) -> bool:
        return bool(self.mask[index])

    @property
    def candidates(self) -> np.ndarray:
        return np.flatnonzero(self.mask)


@dataclass
class SearchResult:
    """A finished run: every trained model in order, and what the search reports."""

    algorithm: str
    seed: int | None
    total: int
    trace: list[TraceEntry]
    cache_hits: int
    limit_ms: float | None
    oracle_mode: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> TraceEntry | None:
        return selected_entry(self.trace)

    @property
    def best_test(self) -> TraceEntry | None:
        return best_test_entry(self.trace)

    def curves(self, length: int | None = None) -> dict[str, np.ndarray]:
        return curves(self.trace, length if length is not None else self.total)

    def to_dict(self, include_trace: bool = False) -> dict[str, Any]:
        selected, best = self.selected, self.best_test
        out: dict[str, Any] = {
            "algorithm": self.algorithm,
            "seed": self.seed,
            "trained": len(self.trace),
            "total": self.total,
            "cache_hits": self.cache_hits,
            "limit_ms": self.limit_ms,
            "accuracy": {
                "seen": f"CIFAR-100 validation accuracy, {self.oracle_mode}",
                "reported": "CIFAR-100 test accuracy (mean over seeds) of the selected model",
            },
            SELECTED: None if selected is None else selected.to_dict(),
            MAX_TEST: None if best is None else best.to_dict(),
            "found": sum(e.found for e in self.trace),
            "info": self.info,
        }
        if include_trace:
            out["trace"] = [e.to_dict() for e in self.trace]
        return out


@dataclass
class Problem:
    """One search setting; see the module docstring."""

    filter: LatencyFilter = field(default_factory=LatencyFilter)
    check: LatencyCheck = field(default_factory=LatencyCheck)
    accuracy: AccuracyOracle | None = None
    cache: bool = True
    space: Space = field(default_factory=nb201_space)
    progress: Callable[[int, int], None] | None = None

    def __post_init__(self) -> None:
        if self.accuracy is None:
            self.accuracy = AccuracyOracle()
        if self.filter.limit_ms != self.check.limit_ms:
            raise ValueError(
                f"the filter's limit ({self.filter.limit_ms}) and the found check's ({self.check.limit_ms}) differ"
            )

    @classmethod
    def build(
        cls,
        limit_ms: float | None = None,
        predicted: LatencySource | None = None,
        measured: LatencySource | None = None,
        **kwargs: Any,
    ) -> Problem:
        """A problem from a limit, the source the search filters with, and the measured truth."""
        return cls(filter=LatencyFilter(limit_ms, predicted), check=LatencyCheck(limit_ms, measured), **kwargs)

    @property
    def limit_ms(self) -> float | None:
        return self.filter.limit_ms

    def start(self, total: int, seed: int | None) -> tuple[TrainingOracle, np.random.Generator]:
        """A fresh budget of ``total`` trained models and the algorithm's generator for one run."""
        noise_seq, algo_seq = np.random.SeedSequence(seed).spawn(2)
        assert self.accuracy is not None
        oracle = TrainingOracle(
            self.accuracy,
            total,
            np.random.default_rng(noise_seq),
            cache=self.cache,
            check=self.check,
            predicted_ms=self.filter.predicted_ms if self.filter.source is not None else None,
            space=self.space,
            progress=self.progress,
        )
        return oracle, np.random.default_rng(algo_seq)

    def finish(
        self, algorithm: str, oracle: TrainingOracle, seed: int | None, info: dict[str, Any] | None = None
    ) -> SearchResult:
        assert self.accuracy is not None
        return SearchResult(
            algorithm=algorithm,
            seed=seed,
            total=oracle.total,
            trace=list(oracle.trace),
            cache_hits=oracle.cache_hits,
            limit_ms=self.limit_ms,
            oracle_mode=self.accuracy.mode,
            info=info or {},
        )
