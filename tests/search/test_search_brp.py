"""BRP-NAS follows the paper's Algorithm 1 exactly: iteration sizes, the alpha split, the top |C|/2^i pool.

The ranking comes from a ScoreRelationModel (ranks by a fixed score) so that the test can recompute,
independently, which models each iteration must pick.
"""

from __future__ import annotations

import numpy as np
import pytest

from search.brp import brp_nas, iteration_sizes
from search.latency import ArrayLatency
from search.problem import Problem
from search.relation import ScoreRelationModel
from search.space import nb201_space

SPACE = nb201_space()


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem.build()


@pytest.fixture(scope="module")
def scores(problem: Problem) -> np.ndarray:
    # A score unrelated to accuracy, so the test checks the mechanics, not that the ranking is good.
    return np.random.default_rng(42).permutation(SPACE.size).astype(float)


def reference_ranking(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return candidates[np.lexsort((candidates, -scores[candidates]))]


def test_iteration_sizes() -> None:
    assert iteration_sizes(100, 5) == [20, 20, 20, 20, 20]
    assert iteration_sizes(23, 5) == [5, 5, 5, 4, 4]
    assert sum(iteration_sizes(97, 7)) == 97
    with pytest.raises(ValueError):
        iteration_sizes(3, 5)


def test_algorithm_1_step_by_step(problem: Problem, scores: np.ndarray) -> None:
    model = ScoreRelationModel(scores)
    result = brp_nas(problem, total=130, model=model, seed=7, budget=100, iterations=5, alpha=0.5)
    trace = result.trace
    assert len(trace) == 130
    assert model.fits == [20, 40, 60, 80, 100]  # predictor retrained on everything trained so far
    candidates = problem.filter.candidates
    ranking = reference_ranking(candidates, scores)
    phases = [e.phase for e in trace]
    assert phases[:20] == ["brp:iter1:random"] * 20
    trained: list[int] = [e.index for e in trace[:20]]
    for i in range(2, 6):
        block = trace[20 * (i - 1) : 20 * i]
        assert [e.phase for e in block] == [f"brp:iter{i}:top"] * 10 + [f"brp:iter{i}:random"] * 10
        unseen = [k for k in ranking if k not in set(trained)]
        assert [e.index for e in block[:10]] == unseen[:10]  # top alpha*K/I unseen, in ranking order
        pool = set(ranking[: candidates.size // 2**i].tolist())  # the top |C|/2^i
        assert all(e.index in pool for e in block[10:])
        trained += [e.index for e in block]
    final = [e.index for e in trace[100:]]
    assert phases[100:] == ["brp:final"] * 30
    assert final == [k for k in ranking if k not in set(trained)][:30]  # top M-K untrained, in order
    assert len(set(trained + final)) == 130
    info = result.info["iterations"]
    assert [(it["top"], it["random"]) for it in info] == [(0, 20)] + [(10, 10)] * 4
    assert [it["pool"] for it in info[1:]] == [candidates.size // 2**i for i in range(2, 6)]


def test_uneven_split_and_alpha_rounding(problem: Problem, scores: np.ndarray) -> None:
    model = ScoreRelationModel(scores)
    result = brp_nas(problem, total=23, model=model, seed=1, budget=23, iterations=5, alpha=0.3)
    counts = [(it["top"], it["random"]) for it in result.info["iterations"]]
    # K/I = [5,5,5,4,4]; alpha*5 = 1.5 -> 2 (half up), alpha*4 = 1.2 -> 1.
    assert counts == [(0, 5), (2, 3), (2, 3), (1, 3), (1, 3)]
    assert model.fits == [5, 10, 15, 19, 23]


def test_alpha_extremes(problem: Problem, scores: np.ndarray) -> None:
    only_top = brp_nas(problem, 40, ScoreRelationModel(scores), seed=0, budget=40, iterations=2, alpha=1.0)
    assert [e.phase for e in only_top.trace[20:]] == ["brp:iter2:top"] * 20
    only_random = brp_nas(problem, 40, ScoreRelationModel(scores), seed=0, budget=40, iterations=2, alpha=0.0)
    assert [e.phase for e in only_random.trace[20:]] == ["brp:iter2:random"] * 20


def test_small_candidate_set_widens_the_pool() -> None:
    measured = np.full(SPACE.size, np.nan)
    valid = SPACE.valid_indices
    measured[valid] = 10.0
    measured[valid[:60]] = 1.0  # only 60 candidates under 2 ms
    source = ArrayLatency(measured)
    problem = Problem.build(2.0, predicted=source, measured=source)
    scores = np.arange(SPACE.size, dtype=float)
    result = brp_nas(problem, 60, ScoreRelationModel(scores), seed=3, budget=50, iterations=5)
    assert len(result.trace) == 60 and {e.index for e in result.trace} == set(valid[:60].tolist())
    assert all(e.found for e in result.trace)
    # Iteration 5's pool is the top 60 // 2**5 = 1 model: its random half must come from further down.
    assert result.info["iterations"][-1]["widened"] > 0


def test_deterministic_and_budget_checked(problem: Problem, scores: np.ndarray) -> None:
    def run(seed: int) -> list[tuple[int, float]]:
        result = brp_nas(problem, 60, ScoreRelationModel(scores, noise=1.0), seed=seed, budget=40, iterations=4)
        return [(e.index, e.valid_acc) for e in result.trace]

    assert run(5) == run(5)
    assert run(5) != run(6)
    with pytest.raises(ValueError, match="at least the predictor budget"):
        brp_nas(problem, 10, ScoreRelationModel(scores), budget=20)
    with pytest.raises(ValueError, match="alpha"):
        brp_nas(problem, 30, ScoreRelationModel(scores), budget=20, iterations=2, alpha=1.5)


def test_refit_during_final_phase(problem: Problem, scores: np.ndarray) -> None:
    """With refit_every, the final phase retrains the predictor every few models until refit_until."""
    model = ScoreRelationModel(scores, noise=1.0)
    result = brp_nas(problem, 70, model, seed=2, budget=20, iterations=2, refit_every=8, refit_until=50)
    assert model.fits == [10, 20, 28, 36, 44, 50]  # the last block is cut at refit_until
    phases = [e.phase for e in result.trace]
    assert phases[20:50] == ["brp:refit"] * 30 and phases[50:] == ["brp:final"] * 20
    assert result.info["refits"] == 4
    assert len({e.index for e in result.trace}) == 70  # never a model twice
    # Without the option the run is Algorithm 1: the same first 20 models, then the ranking in order.
    plain_model = ScoreRelationModel(scores, noise=1.0)
    plain = brp_nas(problem, 70, plain_model, seed=2, budget=20, iterations=2)
    assert plain_model.fits == [10, 20] and "refits" not in plain.info
    assert [e.index for e in plain.trace[:20]] == [e.index for e in result.trace[:20]]
    with pytest.raises(ValueError, match="refit_every"):
        brp_nas(problem, 70, ScoreRelationModel(scores), budget=20, iterations=2, refit_every=-1)
