"""search.oracle: noise, cache, budget accounting, what counts as found, reported figures."""

from __future__ import annotations

import numpy as np
import pytest

from latbench.data import load_accuracy
from search.latency import ArrayLatency
from search.oracle import (
    AccuracyOracle,
    BudgetExhausted,
    LatencyCheck,
    TraceEntry,
    TrainingOracle,
    best_test_entry,
    curves,
    selected_entry,
)
from search.space import nb201_space

BEST = 9930  # best CIFAR-100 test accuracy in NB201 (73.51, mean over seeds)


@pytest.fixture(scope="module")
def accuracy() -> AccuracyOracle:
    return AccuracyOracle()


def test_reads_the_table(accuracy: AccuracyOracle) -> None:
    table = load_accuracy()
    assert accuracy.test[BEST] == pytest.approx(73.513333, abs=1e-5)
    assert accuracy.test[BEST] == pytest.approx(table.value(BEST, "cifar100", "test", "mean"))
    for column, seed in enumerate((777, 888, 999)):
        assert accuracy.valid[BEST, column] == pytest.approx(table.value(BEST, "cifar100", "valid", seed))


def test_random_seed_noise_draws_every_available_seed(accuracy: AccuracyOracle) -> None:
    rng = np.random.default_rng(0)
    seen = {accuracy.read(BEST, rng) for _ in range(200)}
    assert {seed for _, seed in seen} == {777, 888, 999}
    for value, seed in seen:
        assert value == accuracy.valid[BEST, (777, 888, 999).index(seed)]
    two_seeds = int(np.flatnonzero(np.isnan(accuracy.valid[:, 2]) & nb201_space().valid)[0])
    assert {accuracy.read(two_seeds, rng)[1] for _ in range(100)} == {777, 888}


def test_fixed_seed_is_noise_free() -> None:
    oracle = AccuracyOracle(fixed_seed=888)
    rng = np.random.default_rng(0)
    assert {oracle.read(BEST, rng) for _ in range(20)} == {(oracle.valid[BEST, 1], 888)}
    assert oracle.mode == "seed-888"
    with pytest.raises(ValueError, match="fixed_seed"):
        AccuracyOracle(fixed_seed=123)


def _oracle(accuracy: AccuracyOracle, total: int = 3, **kwargs) -> TrainingOracle:  # type: ignore[no-untyped-def]
    return TrainingOracle(accuracy, total, np.random.default_rng(0), **kwargs)


def test_cache_never_trains_twice(accuracy: AccuracyOracle) -> None:
    oracle = _oracle(accuracy)
    first = oracle.train(BEST)
    assert oracle.train(BEST) == first
    assert oracle.spent == 1 and oracle.cache_hits == 1 and len(oracle.trace) == 1


def test_without_cache_each_training_costs_and_redraws(accuracy: AccuracyOracle) -> None:
    oracle = _oracle(accuracy, total=50, cache=False)
    values = {oracle.train(BEST) for _ in range(50)}
    assert oracle.spent == 50 and oracle.cache_hits == 0
    assert len(values) == 3  # the three seeds' validation accuracies


def test_budget_is_enforced(accuracy: AccuracyOracle) -> None:
    oracle = _oracle(accuracy, total=2)
    oracle.train(1)
    oracle.train(2)
    assert oracle.exhausted and oracle.remaining == 0
    assert oracle.train(1) == oracle.trace[0].valid_acc  # cached: still answered, still free
    with pytest.raises(BudgetExhausted, match="budget of 2"):
        oracle.train(3)
    with pytest.raises(ValueError, match=">= 1"):
        _oracle(accuracy, total=0)


def test_trace_records_found_by_measured_latency(accuracy: AccuracyOracle) -> None:
    space = nb201_space()
    measured = np.where(space.valid, 3.0, np.nan)
    measured[BEST] = 9.0
    check = LatencyCheck(5.0, ArrayLatency(measured))
    oracle = _oracle(accuracy, total=3, check=check, predicted_ms=lambda i: 4.0)
    invalid = int(np.flatnonzero(~space.valid)[0])
    oracle.train(BEST, "a")
    oracle.train(1, "b")
    oracle.train(invalid, "c")
    over, under, bad = oracle.trace
    assert (over.step, over.found, over.measured_ms, over.predicted_ms, over.phase) == (1, False, 9.0, 4.0, "a")
    assert (under.step, under.found, under.measured_ms) == (2, True, 3.0)
    assert (bad.found, bad.measured_ms) == (False, None)
    with pytest.raises(ValueError, match="measured"):
        LatencyCheck(5.0, None)


def _entry(step: int, valid: float, test: float, found: bool = True) -> TraceEntry:
    return TraceEntry(step, step, "", valid, 888, test, found, None, None, "")


def test_reported_figures_and_curves() -> None:
    trace = [
        _entry(1, 70.0, 71.0),
        _entry(2, 73.0, 72.0, found=False),  # over the limit: never reported
        _entry(3, 72.0, 70.5),  # best validation so far -> selected, although its test is lower
        _entry(4, 71.0, 73.0),  # best test, not selected
    ]
    assert selected_entry(trace) is trace[2]
    assert best_test_entry(trace) is trace[3]
    c = curves(trace, length=6)
    np.testing.assert_array_equal(c["selected"], [71.0, 71.0, 70.5, 70.5, 70.5, 70.5])
    np.testing.assert_array_equal(c["max_test"], [71.0, 71.0, 71.0, 73.0, 73.0, 73.0])
    empty = curves([_entry(1, 70.0, 71.0, found=False)], length=2)
    assert np.isnan(empty["selected"]).all() and np.isnan(empty["max_test"]).all()
    assert selected_entry([]) is None


def test_progress_is_reported_per_trained_model(accuracy: AccuracyOracle) -> None:
    calls: list[tuple[int, int]] = []
    oracle = _oracle(accuracy, total=3, progress=lambda done, total: calls.append((done, total)))
    oracle.train(1)
    oracle.train(1)  # cached: no training, no progress
    oracle.train(2)
    assert calls == [(1, 3), (2, 3)]
