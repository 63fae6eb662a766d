"""Accuracy predictor: GCN regression on NB201 CIFAR-100 validation accuracy (seed 888, as BRP-NAS).

Same network and training loop as the latency predictor; the target is the standardised accuracy
(percent). Transfer learning (paper Table 2): ``fit(..., init_from=p)`` starts from the trunk (graph
layers) of another trained predictor — a device's latency predictor, or :class:`FlopsGCN`, a GCN
trained to predict FLOPs (which needs no measurements at all) — and fine-tunes everything.

Defaults: the latency recipe (Table S1: AdamW lr 8e-4, weight decay 5e-4, batch 10, plateau halving,
early stopping) with the standardised target.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from predictors.regressor import FitReport, GCNRegressor, ProgressFn, TrainConfig

TARGET_COLUMN = ("cifar100", "valid", 888)  # latbench.data.load_accuracy().column(*TARGET_COLUMN)


class FlopsGCN(GCNRegressor):
    """A GCN trained on FLOPs (log target): a measurement-free source of trunk weights for transfer."""

    kind: ClassVar[str] = "flops_gcn"
    default_train: ClassVar[TrainConfig] = TrainConfig(target="log")


class AccuracyPredictor(GCNRegressor):
    """GCN regression of accuracy (percent); optionally initialised from another predictor's trunk."""

    kind: ClassVar[str] = "accuracy"
    default_train: ClassVar[TrainConfig] = TrainConfig(target="standard")

    def fit(  # type: ignore[override]
        self,
        adjacency: np.ndarray,
        features: np.ndarray,
        y: np.ndarray,
        val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        progress: ProgressFn | None = None,
        init_from: GCNRegressor | None = None,
    ) -> FitReport:
        """Train on accuracies (percent); with ``init_from``, start from that predictor's trunk weights."""
        if init_from is None:
            return super().fit(adjacency, features, y, val=val, progress=progress)
        self.build()
        self.init_trunk_from(init_from)
        return super().fit(adjacency, features, y, val=val, progress=progress, keep_weights=True)
