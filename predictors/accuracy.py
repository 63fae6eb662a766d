"""Accuracy predictor: GCN regression on NB201 CIFAR-100 validation accuracy (seed 888, as BRP-NAS).

Same network and training loop as the latency predictor; the target is the standardised accuracy
(percent). Transfer learning (paper Table 2): ``fit(..., init_from=p)`` starts from the trunk (graph
layers) of another trained predictor — a device's latency predictor, or :class:`FlopsGCN`, a GCN
trained to predict FLOPs (which needs no measurements at all) — and fine-tunes everything.

Defaults: the latency recipe (Table S1: AdamW lr 8e-4, weight decay 5e-4, batch 10, plateau halving,
early stopping) with the standardised target.

Not in the paper: :class:`StructuralAccuracyPredictor`, kernel ridge regression on structural
descriptors of the pruned cell (``predictors.structural``: op counts and input -> output path
statistics), an ensemble over two target transforms x two hyperparameter criteria. With 100 training
models it beats the GCN recipes of Table 2 by a wide margin (``benchmarks/results/table2.md``,
variant ``structural``). :meth:`AccuracyPredictor.fit_distilled` hands that to a GCN: the structural
predictor, fitted on the labelled models, labels every distinct graph of an unlabelled pool (all of
NB201 by default); the GCN is pretrained on those pseudo-labels and fine-tuned on the labelled models
(variant ``distilled``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from latbench.data import BRP_SEED, load_accuracy
from latbench.graph import encode_all_nb201
from predictors.gcn import unique_graphs
from predictors.regressor import FitReport, GCNRegressor, ProgressFn, TrainConfig
from predictors.structural import structural_features

TARGET_COLUMN = ("cifar100", "valid", 888)  # latbench.data.load_accuracy().column(*TARGET_COLUMN)


def brp_accuracy() -> np.ndarray:
    """What BRP-NAS trains its accuracy predictors on: the CIFAR-100 validation accuracy (percent) at seed 888 of
    every NB201 index, NaN for the cells with no input->output path."""
    acc = np.asarray(load_accuracy().column("cifar100", "valid", BRP_SEED), dtype=np.float64).copy()
    acc[~encode_all_nb201().valid] = np.nan
    return acc


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

    def fit_distilled(
        self,
        adjacency: np.ndarray,
        features: np.ndarray,
        y: np.ndarray,
        pool: tuple[np.ndarray, np.ndarray] | None = None,
        distill: DistillConfig | None = None,
        progress: ProgressFn | None = None,
    ) -> DistillReport:
        """Semi-supervised training on a few labelled models plus an unlabelled ``pool`` (default: every
        valid NB201 cell).

        A :class:`StructuralAccuracyPredictor` fitted on the labelled models labels every distinct graph
        of the pool; the GCN first fits those pseudo-labels (a graph of a labelled model keeps its own
        accuracy), then the whole network is fine-tuned on the labelled models alone. The accuracies used
        are the labelled ones and nothing else.
        """
        cfg = distill or DistillConfig()
        if pool is None:
            enc = encode_all_nb201()
            pool = (enc.adjacency[enc.valid], enc.features[enc.valid])
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        teacher = StructuralAccuracyPredictor(cfg.teacher).fit(adjacency, features, y)
        adj_u, feat_u, labels = _pseudo_labelled(adjacency, features, y, pool, teacher)
        base = self.train
        self.train = replace(base, epochs=cfg.pretrain_epochs)
        try:
            pretrain = super().fit(adj_u, feat_u, labels, progress=progress)
            self.train = replace(base, learning_rate=cfg.finetune_learning_rate or base.learning_rate)
            finetune = super().fit(adjacency, features, y, progress=progress, keep_weights=True)
        finally:
            self.train = base
        return DistillReport(pretrain=pretrain, finetune=finetune, pool_graphs=int(labels.size), teacher=teacher)


def _pseudo_labelled(
    adjacency: np.ndarray,
    features: np.ndarray,
    y: np.ndarray,
    pool: tuple[np.ndarray, np.ndarray],
    teacher: StructuralAccuracyPredictor,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per distinct graph of labelled + pool: the mean labelled accuracy where a labelled model has
    that graph, else the teacher's prediction."""
    pool_adj, pool_feat = pool
    if pool_adj.shape[0] == 0:
        raise ValueError("the unlabelled pool is empty")
    adj = np.concatenate([adjacency, pool_adj])
    feat = np.concatenate([features, pool_feat])
    adj_u, feat_u, inverse = unique_graphs(adj, feat)
    # The teacher scores the cells as given: its path descriptors assume the encoding's topological node
    # order, which the canonical order of the distinct graphs does not keep.
    graphs, n = adj_u.shape[0], y.size
    taught = teacher.predict(pool_adj, pool_feat)
    labels = np.bincount(inverse[n:], weights=taught, minlength=graphs)
    labels /= np.maximum(np.bincount(inverse[n:], minlength=graphs), 1)
    count = np.bincount(inverse[:n], minlength=graphs)
    total = np.bincount(inverse[:n], weights=y, minlength=graphs)
    labelled = count > 0
    labels[labelled] = total[labelled] / count[labelled]
    return adj_u, feat_u, labels


# -- structural kernel ridge (not in the paper) ---------------------------------------------------------------
TRANSFORMS = ("identity", "logit")
CRITERIA = ("share", "mse")


@dataclass(frozen=True)
class StructuralConfig:
    """Kernel ridge on :func:`predictors.structural.structural_features`; one member per (transform, criterion).

    Each member picks its RBF length scale (times sqrt of the feature count, on standardised features)
    and ridge penalty by closed-form leave-one-out on the training models: ``share`` maximises the LOO
    share within ``tolerance`` (the metric Table 2 scores; LOO MSE breaks ties), ``mse`` minimises the
    LOO MSE (steadier: the share is a noisy count on ~100 models). Members' predictions are averaged.
    """

    transforms: tuple[str, ...] = TRANSFORMS
    criteria: tuple[str, ...] = CRITERIA
    length_scales: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 4.0)
    alphas: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        unknown = set(self.transforms) - set(TRANSFORMS)
        if not self.transforms or unknown:
            raise ValueError(f"transforms must be a non-empty subset of {TRANSFORMS}, got {self.transforms}")
        if not self.criteria or set(self.criteria) - set(CRITERIA):
            raise ValueError(f"criteria must be a non-empty subset of {CRITERIA}, got {self.criteria}")
        if min(self.length_scales, default=0) <= 0 or min(self.alphas, default=0) <= 0 or self.tolerance <= 0:
            raise ValueError(f"length scales, alphas and tolerance must be positive: {self}")


@dataclass(frozen=True)
class DistillConfig:
    """:meth:`AccuracyPredictor.fit_distilled`: pseudo-label epochs, the fine-tuning learning rate (None: the
    recipe's own) and the teacher's configuration."""

    pretrain_epochs: int = 30
    finetune_learning_rate: float | None = None
    teacher: StructuralConfig = StructuralConfig()

    def __post_init__(self) -> None:
        lr = self.finetune_learning_rate
        if self.pretrain_epochs < 1 or (lr is not None and lr <= 0):
            raise ValueError(f"need pretrain_epochs >= 1 and a positive finetune_learning_rate: {self}")


@dataclass(frozen=True)
class DistillReport:
    pretrain: FitReport
    finetune: FitReport
    pool_graphs: int  # distinct graphs the GCN was pretrained on
    teacher: StructuralAccuracyPredictor  # fitted on the labelled models


@dataclass
class _Member:
    transform: str
    criterion: str
    length_scale: float
    alpha: float
    dual: np.ndarray
    t_mean: float
    t_std: float


class StructuralAccuracyPredictor:
    """Accuracy (percent) from the pruned cell's structure: an ensemble of RBF kernel ridge regressions.

    Needs only the n training models' accuracies and their graphs; fits in well under a second.
    """

    kind: ClassVar[str] = "structural_accuracy"

    def __init__(self, config: StructuralConfig | None = None) -> None:
        self.config = config or StructuralConfig()
        self.members: list[_Member] = []
        self._x: np.ndarray | None = None
        self._mu = np.zeros(0)
        self._sd = np.ones(0)

    @staticmethod
    def _forward(kind: str, y: np.ndarray) -> np.ndarray:
        if kind == "logit":
            p = np.clip(y / 100.0, 1e-4, 1 - 1e-4)
            return np.log(p / (1 - p))
        return y

    @staticmethod
    def _inverse(kind: str, t: np.ndarray) -> np.ndarray:
        return 100.0 / (1.0 + np.exp(-t)) if kind == "logit" else t

    def _kernel(self, a: np.ndarray, b: np.ndarray, length_scale: float) -> np.ndarray:
        sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
        return np.exp(-np.maximum(sq, 0.0) / (2.0 * length_scale**2 * a.shape[1]))

    def fit(self, adjacency: np.ndarray, features: np.ndarray, y: np.ndarray) -> StructuralAccuracyPredictor:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1 or y.size != len(adjacency) or y.size < 3 or not np.all((y > 0) & (y < 100)):
            raise ValueError(f"need >= 3 accuracies in (0, 100) percent, one per model; got shape {y.shape}")
        x = structural_features(adjacency, features)
        self._mu, self._sd = x.mean(0), x.std(0) + 1e-9
        self._x = (x - self._mu) / self._sd
        eye = np.eye(y.size)
        self.members = []
        for kind in self.config.transforms:
            t = self._forward(kind, y)
            t_mean, t_std = float(t.mean()), float(t.std()) or 1.0
            z = (t - t_mean) / t_std
            best = {c: (np.inf, np.inf, 0.0, 0.0) for c in self.config.criteria}  # (key, key, ls, alpha)
            for ls in self.config.length_scales:
                k = self._kernel(self._x, self._x, ls)
                for alpha in self.config.alphas:
                    hat = k @ np.linalg.inv(k + alpha * eye)
                    loo = z - (z - hat @ z) / (1.0 - np.diag(hat))  # closed-form leave-one-out predictions
                    pred = self._inverse(kind, loo * t_std + t_mean)
                    share = float(np.mean(np.abs(pred / y - 1.0) <= self.config.tolerance))
                    mse = float(np.mean((loo - z) ** 2))
                    for crit, cand in (("share", (-share, mse, ls, alpha)), ("mse", (mse, -share, ls, alpha))):
                        if crit in best and cand[:2] < best[crit][:2]:
                            best[crit] = cand
            for crit in self.config.criteria:
                _, _, ls, alpha = best[crit]
                dual = np.linalg.solve(self._kernel(self._x, self._x, ls) + alpha * eye, z)
                self.members.append(_Member(kind, crit, ls, alpha, dual, t_mean, t_std))
        return self

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy (percent), the mean of the members'."""
        if self._x is None:
            raise ValueError("the structural accuracy predictor is not fitted")
        x = (structural_features(adjacency, features) - self._mu) / self._sd
        out = np.zeros(x.shape[0])
        for m in self.members:
            for start in range(0, x.shape[0], 4096):  # bounded memory for the whole space
                k = self._kernel(x[start : start + 4096], self._x, m.length_scale)
                out[start : start + 4096] += self._inverse(m.transform, (k @ m.dual) * m.t_std + m.t_mean)
        return out / len(self.members)
