"""Aging (regularised) evolution, Real et al. 2019, as used for NB201 baselines.

Start from ``population`` random candidates; then repeatedly draw ``sample`` members of the population
(without replacement), mutate the one with the best validation accuracy on one edge, train the child,
add it and drop the oldest member. Children that the latency filter rejects (invalid, or predicted
over the limit) are not trained: the mutation is drawn again. In cache mode a child that was already
trained costs nothing but still joins the population (aging applies to it like to any child).

``max_attempts`` bounds the mutations drawn (default 100 per model of budget), so a search in a region
where every child is rejected or already trained stops instead of looping; ``info`` says why it stopped.
"""

from __future__ import annotations

from collections import deque

from search.problem import Problem, SearchResult
from search.space import mutate

NAME = "ae"


def aging_evolution(
    problem: Problem,
    total: int,
    seed: int | None = None,
    population: int = 64,
    sample: int = 16,
    max_attempts: int | None = None,
) -> SearchResult:
    if population < 1 or not 1 <= sample <= population:
        raise ValueError(f"need population >= 1 and 1 <= sample <= population, got {population}, {sample}")
    oracle, rng = problem.start(total, seed)
    candidates = problem.filter.candidates
    admissible = problem.filter.mask
    limit = max_attempts if max_attempts is not None else 100 * total
    members: deque[tuple[int, float]] = deque()
    for index in rng.choice(candidates, size=min(population, total, candidates.size), replace=False):
        members.append((int(index), oracle.train(int(index), f"{NAME}:init")))
    attempts = rejected = 0
    stopped = "budget"
    while not oracle.exhausted:
        if attempts >= limit:
            stopped = "max_attempts"
            break
        drawn = rng.choice(len(members), size=min(sample, len(members)), replace=False)
        parent = members[max(drawn, key=lambda k: members[k][1])][0]
        child = mutate(problem.space, parent, rng)
        attempts += 1
        if not admissible[child]:
            rejected += 1
            continue
        members.append((child, oracle.train(child, f"{NAME}:mutate")))
        if len(members) > population:
            members.popleft()
    info = {
        "population": population,
        "sample": sample,
        "mutations": attempts,
        "rejected_by_filter": rejected,
        "stopped": stopped,
        "candidates": int(candidates.size),
    }
    return problem.finish(NAME, oracle, seed, info)
