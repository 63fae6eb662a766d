"""Random search: train candidates drawn uniformly without replacement until the budget is spent."""

from __future__ import annotations

from search.problem import Problem, SearchResult

NAME = "random"


def random_search(problem: Problem, total: int, seed: int | None = None) -> SearchResult:
    """Train ``total`` distinct candidates (valid, predicted under the limit), in a random order."""
    oracle, rng = problem.start(total, seed)
    candidates = problem.filter.candidates
    for index in rng.permutation(candidates)[:total]:
        oracle.train(int(index), NAME)
    return problem.finish(NAME, oracle, seed, {"candidates": int(candidates.size)})
