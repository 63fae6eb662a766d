"""Every algorithm: deterministic for a seed, within budget, never reports a model over the limit, and
better than random search on average.

"Better than random" is a two-sample comparison over the same seeds 0..N-1: the algorithm's mean
reported test accuracy must exceed random search's by more than two standard errors of the difference
(Welch). Under "no difference" that happens by chance about 2.3% of the time (one-sided normal tail),
so passing is evidence, not luck of the seeds; and the seeds are fixed, so the test cannot flake. The
budgets are where the algorithms have had room to act (aging evolution only starts mutating after its
first 64 random models).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from search.evolution import aging_evolution
from search.latency import ArrayLatency, TableLatency
from search.problem import Problem, SearchResult
from search.random_search import random_search
from search.reinforce import Controller, reinforce
from search.relation import GCNRelationModel, OneHotRelationModel
from search.runner import SearchOptions, run_search
from search.space import nb201_space

SPACE = nb201_space()
DEVICE = "desktop_gpu_gtx_1080ti_fp32"
LIMIT = 5.0


@pytest.fixture(scope="module")
def free() -> Problem:
    return Problem.build()


@pytest.fixture(scope="module")
def limited() -> Problem:
    """5 ms on the desktop GPU, filtered with a deliberately wrong predictor (measured x 0.9 for half)."""
    measured = TableLatency(DEVICE)
    wrong = measured.values.copy()
    wrong[::2] *= 0.9  # half the models look 10% faster than they are: some pass the filter and break the limit
    return Problem.build(LIMIT, predicted=ArrayLatency(wrong, "wrong"), measured=measured)


@pytest.fixture(scope="module")
def controller() -> Controller:
    return Controller()


@pytest.fixture(scope="module")
def onehot() -> OneHotRelationModel:
    return OneHotRelationModel()


Runner = Callable[[Problem, int, int], SearchResult]


def runners(controller: Controller, onehot: OneHotRelationModel) -> dict[str, Runner]:
    return {
        "random": lambda p, total, seed: random_search(p, total, seed),
        "ae": lambda p, total, seed: aging_evolution(p, total, seed, population=16, sample=4),
        "reinforce": lambda p, total, seed: reinforce(p, total, seed, controller=controller),
        "brp": lambda p, total, seed: run_search(
            p, SearchOptions("brp", total, budget=total // 2, iterations=3, relation="onehot"), seed, onehot
        ),
    }


ALGOS = ("random", "ae", "reinforce", "brp")


def signature(result: SearchResult) -> list[tuple[int, float, int]]:
    return [(e.index, e.valid_acc, e.seed) for e in result.trace]


@pytest.mark.parametrize("algo", ALGOS)
def test_deterministic_for_a_seed(
    algo: str, free: Problem, controller: Controller, onehot: OneHotRelationModel
) -> None:
    run = runners(controller, onehot)[algo]
    first = run(free, 40, 11)
    assert signature(first) == signature(run(free, 40, 11))
    assert signature(first) != signature(run(free, 40, 12))


@pytest.mark.parametrize("algo", ALGOS)
def test_budget_and_limit(algo: str, limited: Problem, controller: Controller, onehot: OneHotRelationModel) -> None:
    run = runners(controller, onehot)[algo]
    assert limited.filter.predicted is not None
    measured = limited.check.measured
    assert measured is not None
    for seed in range(3):
        result = run(limited, 40, seed)
        indices = [e.index for e in result.trace]
        assert len(indices) == 40 == len(set(indices))  # the whole budget, each model trained once
        assert [e.step for e in result.trace] == list(range(1, 41))
        # Only models the filter admits are trained ...
        assert all(SPACE.valid[i] and limited.filter.predicted[i] <= LIMIT for i in indices)
        # ... and only those whose measured latency is under the limit count.
        for entry in result.trace:
            assert entry.found == (measured.latency_ms([entry.index])[0] <= LIMIT)
        assert any(not e.found for e in result.trace) or algo != "random"
        for reported in (result.selected, result.best_test):
            assert reported is not None and reported.found
            assert reported.measured_ms is not None and reported.measured_ms <= LIMIT


def test_cache_off_lets_evolution_pay_for_repeats(free: Problem) -> None:
    paying = Problem.build(cache=False)
    result = aging_evolution(paying, 120, seed=0, population=8, sample=8)
    indices = [e.index for e in result.trace]
    assert len(indices) == 120 and len(set(indices)) < 120  # a small population revisits models
    cached = aging_evolution(free, 120, seed=0, population=8, sample=8)
    assert len({e.index for e in cached.trace}) == 120 and cached.cache_hits > 0


def test_stuck_searches_stop_instead_of_looping() -> None:
    measured = np.full(SPACE.size, np.nan)
    measured[SPACE.valid] = 10.0
    measured[[9930]] = 1.0  # a single candidate, with no admissible neighbour
    source = ArrayLatency(measured)
    problem = Problem.build(2.0, predicted=source, measured=source)
    result = aging_evolution(problem, 5, seed=0, max_attempts=50)
    assert [e.index for e in result.trace] == [9930]
    assert result.info["stopped"] == "max_attempts"


def mean_and_se(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values)
    return float(arr.mean()), float(arr.std(ddof=1) / np.sqrt(arr.size))


def assert_better_than_random(scores: list[float], random_scores: list[float]) -> None:
    mean_a, se_a = mean_and_se(scores)
    mean_r, se_r = mean_and_se(random_scores)
    margin = 2.0 * np.hypot(se_a, se_r)
    assert mean_a - mean_r > margin, f"mean {mean_a:.3f} vs random {mean_r:.3f}: needs > {margin:.3f} more"


def reported(results: list[SearchResult]) -> list[float]:
    return [r.selected.test_acc for r in results if r.selected is not None]


SEEDS = range(12)


@pytest.fixture(scope="module")
def random_at() -> Callable[[int], list[float]]:
    problem = Problem.build()
    return lambda total: reported([random_search(problem, total, s) for s in SEEDS])


def test_evolution_beats_random(free: Problem, random_at: Callable[[int], list[float]]) -> None:
    assert_better_than_random(reported([aging_evolution(free, 150, s) for s in SEEDS]), random_at(150))


@pytest.mark.slow
def test_reinforce_beats_random(free: Problem, controller: Controller, random_at: Callable[[int], list[float]]) -> None:
    results = [reinforce(free, 300, s, controller=controller) for s in SEEDS]
    assert_better_than_random(reported(results), random_at(300))


@pytest.mark.slow
def test_brp_with_gcn_beats_random(free: Problem, random_at: Callable[[int], list[float]]) -> None:
    model = GCNRelationModel(hidden=32, steps=300)
    options = SearchOptions("brp", 60, budget=30, iterations=5)
    results = [run_search(free, options, s, relation_model=model) for s in SEEDS]
    assert all(len(r.trace) == 60 for r in results)
    assert_better_than_random(reported(results), random_at(60))
