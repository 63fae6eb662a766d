"""Per-device latency predictor: the BRP-NAS GCN trained on measured latencies (ms).

Recipe (paper Table S1, the ``TrainConfig`` defaults): 4 graph layers x 600 hidden, dropout 0.002,
AdamW lr 8e-4 with weight decay 5e-4, batch 10, learning rate halved after 10 epochs without
validation improvement, up to 250 epochs, early stopping with patience 35 (best weights restored).

Target: standardised log(latency), so that the loss weighs relative errors (what the ±x% metrics
score) equally across the 1-100 ms range. Measured on one 900/100 split (250 epochs, paper MSE loss),
log vs standardised raw latency gave ±10% shares of 70.5 vs 59.4 on the Adreno 612 and 91.0 vs 95.5 on
the GTX 1080 Ti: neither wins everywhere, and log is what a relative-error loss needs (below).

Loss: by default a Huber loss (quadratic within 0.2 standard deviations of log latency — about ±10% —
and linear beyond), not the paper's MSE: LatBench has a few timings far from those of identical
networks, and under MSE they dominate the loss and the GCN underfits the rest. At 60 epochs on the same
split the Huber loss took the ±5% share from 44 to 73-77 (Adreno 612) and from 57 to 72-75 (GTX 1080 Ti).
``TrainConfig(loss="mse")`` restores the paper's recipe; ``benchmarks/table1_latency.py`` runs both.

Layer-wise prior (``prior="layerwise"``, not in the paper): the GCN learns the factor between the
measured latency and the layer-wise baseline's prediction instead of the latency itself. On the
Adreno 612 (one 900/100 split, Huber loss) it took ±1/5/10% from 24.9/77.1/91.4 to 39.0/89.4/94.5
(ceiling 63.6/92.5/95.7); on the Edge TPU from 18.4/69.6/90.8 to 24.0/72.4/90.9. An ensemble of 3
seeds changed less than a point. Over 3 splits on the paper's six devices it is the best or equal
variant with 900 training models (``benchmarks/results/table1.md``);
:meth:`LatencyPredictor.recommended` builds that recipe.

Usage::

    p = LatencyPredictor()
    p.fit(adj, feat, y_ms, val=(va, vf, vy_ms), progress=lambda epoch, total, logs: ...)
    ms = p.predict(adj, feat)
    p.save("dir"); p = LatencyPredictor.load("dir")
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from predictors.baselines import FIXED, OP_KINDS, LayerwisePredictor
from predictors.gcn import GCNConfig
from predictors.regressor import FitReport, GCNRegressor, ProgressFn, TrainConfig

PRIORS = (None, "layerwise")


class LatencyPredictor(GCNRegressor):
    """GCN latency predictor for one device; ``predict`` returns milliseconds.

    ``prior="layerwise"``: the layer-wise baseline (per-op costs fitted by NNLS on the same training
    set) predicts first, and the GCN learns the remaining factor, latency / layer-wise prediction
    (on a log scale, so the GCN predicts a relative correction).
    """

    kind: ClassVar[str] = "latency"
    default_train: ClassVar[TrainConfig] = TrainConfig(target="log", loss="huber", huber_delta=0.2)

    def __init__(self, gcn: GCNConfig | None = None, train: TrainConfig | None = None, prior: str | None = None):
        super().__init__(gcn, train)
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        if prior is not None and self.train.target != "log":
            raise ValueError("a prior needs the log target (the GCN predicts a factor on top of it)")
        self.prior = prior
        self.prior_model: LayerwisePredictor | None = None

    @classmethod
    def recommended(cls, seed: int = 0, gcn: GCNConfig | None = None) -> LatencyPredictor:
        """The best recipe measured in Table 1: Huber loss on log latency, layer-wise prior, Table S1 rest."""
        return cls(gcn, replace(cls.default_train, seed=seed), prior="layerwise")

    def _prior(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        assert self.prior_model is not None
        base = self.prior_model.predict(np.asarray(adjacency), np.asarray(features))
        return np.maximum(base, 1e-6)  # a graph with no fitted cost at all must not divide by zero

    def fit(
        self,
        adjacency: np.ndarray,
        features: np.ndarray,
        y: np.ndarray,
        val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        progress: ProgressFn | None = None,
        keep_weights: bool = False,
    ) -> FitReport:
        if self.prior is None:
            return super().fit(adjacency, features, y, val=val, progress=progress, keep_weights=keep_weights)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        self.prior_model = LayerwisePredictor().fit(np.asarray(adjacency), np.asarray(features), y)
        ratio = y / self._prior(adjacency, features)
        if val is not None:
            va, vf, vy = val
            val = (va, vf, np.asarray(vy, dtype=np.float64).reshape(-1) / self._prior(va, vf))
        return super().fit(adjacency, features, ratio, val=val, progress=progress, keep_weights=keep_weights)

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        out = super().predict(adjacency, features)
        if self.prior is None:
            return out
        if self.prior_model is None:
            raise ValueError("the predictor is not trained (call fit or load)")
        return out * self._prior(adjacency, features)

    def _extra_state(self) -> dict[str, Any] | None:
        if self.prior is None:
            return None
        assert self.prior_model is not None and self.prior_model.op_costs is not None
        return {"prior": self.prior, "op_costs_ms": self.prior_model.op_costs, "factor": self.prior_model.factor}

    def _restore_extra(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        if state.get("prior") != "layerwise":
            raise ValueError(f"unknown prior in a saved latency predictor: {state.get('prior')!r}")
        costs = state["op_costs_ms"]
        if set(costs) != {*OP_KINDS, FIXED}:
            raise ValueError(f"saved layer-wise prior has op costs for {sorted(costs)}")
        self.prior = "layerwise"
        self.prior_model = LayerwisePredictor(costs)
        self.prior_model.factor = float(state["factor"])
