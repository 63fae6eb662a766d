"""One entry point for every algorithm: options in, :class:`~search.problem.SearchResult` out.

The CLI and the benchmarks both go through :func:`run_search`. Networks that are expensive to build
(the GCN relation predictor, the REINFORCE controller) can be passed in and are then reused across
runs: each run re-seeds them, so reuse saves compile time and changes no result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.brp import brp_nas
from search.evolution import aging_evolution
from search.problem import Problem, SearchResult
from search.random_search import random_search
from search.reinforce import Controller, reinforce
from search.relation import GCNRelationModel, OneHotRelationModel, RelationModel

ALGORITHMS: tuple[str, ...] = ("brp", "ae", "reinforce", "random")
RELATIONS: tuple[str, ...] = ("gcn", "onehot")


@dataclass(frozen=True)
class SearchOptions:
    algorithm: str
    total: int  # M: models trained in all
    budget: int = 100  # K: BRP-NAS predictor-training budget
    iterations: int = 5  # I
    alpha: float = 0.5
    population: int = 64  # aging evolution
    sample: int = 16
    relation: str = "gcn"  # BRP-NAS predictor: "gcn" (the paper's) or "onehot" (cheap)
    hidden: int = 64  # GCN relation predictor width (4 layers)
    steps: int = 500  # full-batch Adam steps per predictor fit
    learning_rate: float = 2e-3

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        if self.relation not in RELATIONS:
            raise ValueError(f"unknown relation predictor {self.relation!r}; choose one of {', '.join(RELATIONS)}")
        if self.total < 1:
            raise ValueError(f"--total must be >= 1, got {self.total}")
        if self.algorithm == "brp" and not 1 <= self.iterations <= self.budget <= self.total:
            raise ValueError(
                f"BRP-NAS needs 1 <= iterations ({self.iterations}) <= budget K ({self.budget}) "
                f"<= total M ({self.total})"
            )


def make_relation_model(options: SearchOptions, transfer: Any | None = None) -> RelationModel:
    """The BRP-NAS predictor the options name; ``transfer``: a trained GCN regressor whose trunk starts each fit."""
    if options.relation == "onehot":
        if transfer is not None:
            raise ValueError("transfer initialisation needs the GCN relation predictor (--relation gcn)")
        return OneHotRelationModel()
    weights = None
    hidden, layers = options.hidden, 4
    if transfer is not None:
        from predictors.gcn import trunk_of

        if getattr(transfer, "model", None) is None:
            raise ValueError("the latency predictor to transfer from is not trained")
        hidden, layers = transfer.gcn.hidden, transfer.gcn.layers
        weights = trunk_of(transfer.model).get_weights()
    model = GCNRelationModel(hidden=hidden, layers=layers, steps=options.steps, learning_rate=options.learning_rate)
    if weights is not None:
        model.set_transfer(weights)
    return model


def run_search(
    problem: Problem,
    options: SearchOptions,
    seed: int | None = None,
    relation_model: RelationModel | None = None,
    controller: Controller | None = None,
) -> SearchResult:
    if options.algorithm == "brp":
        model = relation_model if relation_model is not None else make_relation_model(options)
        return brp_nas(
            problem,
            options.total,
            model,
            seed=seed,
            budget=options.budget,
            iterations=options.iterations,
            alpha=options.alpha,
        )
    if options.algorithm == "ae":
        return aging_evolution(problem, options.total, seed=seed, population=options.population, sample=options.sample)
    if options.algorithm == "reinforce":
        return reinforce(problem, options.total, seed=seed, controller=controller)
    return random_search(problem, options.total, seed=seed)
