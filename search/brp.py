"""BRP-NAS search (the paper's Algorithm 1).

Given candidates C (valid models whose *predicted* latency is under the limit; all valid models
without a limit), a predictor-training budget K over I iterations and a total budget M:

1. iteration 1: train K/I models drawn at random from C;
2. iteration i = 2..I: train the top α·K/I not-yet-trained models of the current ranking, plus
   (1−α)·K/I drawn at random from the top |C|/2^i of the ranking (not yet trained, not just picked);
3. after every iteration: retrain the binary relation predictor on all pairs of the trained models
   and re-rank C;
4. finally train the top M−K untrained models of the last ranking, in ranking order.

Optional, not in the paper (``refit_every`` > 0): during step 4, until ``refit_until`` models are
trained, train the top ``refit_every`` untrained models of the ranking, then retrain the predictor on
every model trained so far and re-rank, and repeat; after that step 4 goes on in ranking order. The
accuracies of the final phase's models then inform the ranking instead of arriving unused. Defaults
(0) leave Algorithm 1 exactly as the paper has it.

K/I is split as evenly as possible when it is not a whole number (the first K mod I iterations get
one more); α·K/I is rounded to the nearest model. When the top |C|/2^i holds fewer untrained models
than asked for, the pool is widened down the ranking (recorded in ``info["iterations"]``). A model
counts as found only if its measured latency is under the limit (see :mod:`search.oracle`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.problem import Problem, SearchResult
from search.relation import RelationModel

NAME = "brp"


def iteration_sizes(budget: int, iterations: int) -> list[int]:
    """How many models each iteration trains: K split into I near-equal parts summing to K."""
    if iterations < 1 or budget < iterations:
        raise ValueError(f"need 1 <= iterations <= budget, got K={budget}, I={iterations}")
    base, extra = divmod(budget, iterations)
    return [base + (1 if i < extra else 0) for i in range(iterations)]


def brp_nas(
    problem: Problem,
    total: int,
    model: RelationModel,
    seed: int | None = None,
    budget: int = 100,
    iterations: int = 5,
    alpha: float = 0.5,
    refit_every: int = 0,
    refit_until: int | None = None,
) -> SearchResult:
    """Run BRP-NAS; ``budget`` is K (predictor training), ``total`` is M (all trained models)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if refit_every < 0:
        raise ValueError(f"refit_every must be >= 0, got {refit_every}")
    if total < budget:
        raise ValueError(f"the total budget M={total} must be at least the predictor budget K={budget}")
    sizes = iteration_sizes(budget, iterations)
    candidates = problem.filter.candidates
    if candidates.size < 2:
        raise ValueError(f"only {candidates.size} candidate model(s) under the latency limit; nothing to search")
    oracle, rng = problem.start(total, seed)
    model.reset(int(rng.integers(2**63)))  # the predictor's seed comes from the run's algorithm stream
    trained: list[int] = []
    accuracies: list[float] = []
    is_trained = np.zeros(problem.space.size, dtype=bool)
    ranking: np.ndarray | None = None
    log: list[dict[str, Any]] = []

    def train(indices: np.ndarray, phase: str) -> None:
        for index in indices:
            accuracies.append(oracle.train(int(index), phase))
            trained.append(int(index))
            is_trained[index] = True

    for i, size in enumerate(sizes, start=1):
        untrained = candidates[~is_trained[candidates]]
        size = min(size, untrained.size)
        if i == 1 or ranking is None:
            picks = rng.choice(untrained, size=size, replace=False)
            train(picks, f"{NAME}:iter{i}:random")
            log.append({"iteration": i, "random": int(picks.size), "top": 0, "pool": int(candidates.size)})
        else:
            n_top = int(np.floor(alpha * size + 0.5))  # round half up (Python round() is half-to-even)
            unseen = ranking[~is_trained[ranking]]
            top = unseen[:n_top]
            pool_size = max(1, candidates.size // 2**i)
            pool = ranking[:pool_size]
            pool = pool[~is_trained[pool] & ~np.isin(pool, top)]
            widened = 0
            need = size - top.size
            if pool.size < need:  # not enough untrained in the top |C|/2^i: take the next ones down
                rest = unseen[top.size :]
                extra = rest[~np.isin(rest, pool)][: need - pool.size]
                widened = int(extra.size)
                pool = np.concatenate([pool, extra])
            picks = rng.choice(pool, size=min(need, pool.size), replace=False)
            train(top, f"{NAME}:iter{i}:top")
            train(picks, f"{NAME}:iter{i}:random")
            log.append(
                {"iteration": i, "top": int(top.size), "random": int(picks.size), "pool": pool_size, "widened": widened}
            )
        model.fit(np.array(trained), np.array(accuracies))
        ranking = model.rank(candidates)
    assert ranking is not None
    refits = 0
    stop = min(total, total if refit_until is None else refit_until)
    while refit_every > 0 and len(trained) < stop and oracle.remaining > 0:
        unseen = ranking[~is_trained[ranking]]
        take = unseen[: min(refit_every, stop - len(trained), oracle.remaining)]
        if take.size == 0:
            break
        train(take, f"{NAME}:refit")
        if len(trained) >= total or oracle.remaining == 0:
            break  # nothing left to rank for
        model.fit(np.array(trained), np.array(accuracies))
        ranking = model.rank(candidates)
        refits += 1
    final = ranking[~is_trained[ranking]][: oracle.remaining]
    train(final, f"{NAME}:final")
    info = {"K": budget, "I": iterations, "alpha": alpha, "candidates": int(candidates.size), "iterations": log}
    if refit_every > 0:
        info.update(refit_every=refit_every, refit_until=refit_until, refits=refits)
    return problem.finish(NAME, oracle, seed, info)
