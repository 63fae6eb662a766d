"""A GCN regressor: training recipe, target transform, batch scoring and portable save/load.

Shared by the latency predictor (``predictors.latency``) and the accuracy predictor
(``predictors.accuracy``), which only differ in their defaults and target transform.

Saved form (a directory): ``config.json`` (kind, GCN and training configs, the fitted target
transform) + ``model.weights.h5`` (Keras weights). Loading rebuilds the network from the JSON
config and loads the weights: no pickles, no Python code in the artifact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Self

import keras
import numpy as np
import tensorflow as tf

from latbench.graph import predict_all_nb201
from predictors.artifact import WEIGHTS_FILE, read_artifact, write_artifact
from predictors.gcn import BatchRunner, GCNConfig, build_gcn, check_encoding, seed_everything, trunk_of, unique_graphs

FORMAT_VERSION = 1

# progress(epoch (1-based), max_epochs, logs such as {"loss": .., "val_loss": .., "learning_rate": ..})
LOSSES = ("mse", "huber")
ProgressFn = Callable[[int, int, dict[str, float]], None]
Encoded = tuple[np.ndarray, np.ndarray]  # (adjacency, features)


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe. Defaults: the paper's Table S1 for the latency predictor."""

    learning_rate: float = 8e-4
    weight_decay: float = 5e-4
    batch_size: int = 10
    epochs: int = 250
    patience: int = 35  # early stopping on the validation loss (best weights restored)
    lr_patience: int = 10  # halve the learning rate after this many epochs without improvement
    lr_factor: float = 0.5
    lr_min_delta: float = 1e-4  # an epoch improves on the plateau when loss < best - min_delta (as Keras)
    target: str = "log"  # "log" | "standard" (see TargetTransform)
    loss: str = "mse"  # "mse" (paper) | "huber" (quadratic within huber_delta, linear beyond: robust to outliers)
    huber_delta: float = 1.0  # in standardised target units
    seed: int = 0
    jit_compile: bool = True

    def __post_init__(self) -> None:
        if self.target not in TargetTransform.KINDS:
            raise ValueError(f"target must be one of {TargetTransform.KINDS}, got {self.target!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.batch_size < 1 or self.epochs < 1 or self.patience < 1 or self.lr_patience < 1:
            raise ValueError(f"batch_size, epochs, patience and lr_patience must be >= 1: {self}")
        if self.learning_rate <= 0 or self.weight_decay < 0 or not 0 < self.lr_factor < 1:
            raise ValueError(f"need learning_rate > 0, weight_decay >= 0, 0 < lr_factor < 1: {self}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


@dataclass
class TargetTransform:
    """Maps targets to what the network regresses.

    ``log``: standardised log(y) — errors become relative, which is what the ±x% metrics score,
    and latencies spanning 1-100 ms get equal weight. ``standard``: (y - mean) / std.
    """

    KINDS: ClassVar[tuple[str, ...]] = ("log", "standard")
    kind: str = "log"
    mean: float = 0.0
    std: float = 1.0

    def fit(self, y: np.ndarray) -> TargetTransform:
        z = self._pre(y)
        std = float(np.std(z))
        return replace(self, mean=float(np.mean(z)), std=std if std > 0 else 1.0)

    def forward(self, y: np.ndarray) -> np.ndarray:
        return ((self._pre(y) - self.mean) / self.std).astype(np.float32)

    def inverse(self, t: np.ndarray) -> np.ndarray:
        z = np.asarray(t, dtype=np.float64) * self.std + self.mean
        return np.exp(z) if self.kind == "log" else z

    def _pre(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "log":
            if np.any(y <= 0):
                raise ValueError("a log target needs positive values; got a value <= 0")
            return np.log(y)
        return y


@dataclass
class FitReport:
    """What a training run did."""

    epochs: int = 0
    best_epoch: int = 0
    best_loss: float = math.nan  # validation loss at the best epoch (train loss without validation)
    seconds: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GCNRegressor:
    """A GCN mapping a cell encoding to one number, trained with the configured recipe."""

    kind: ClassVar[str] = "regressor"
    default_train: ClassVar[TrainConfig] = TrainConfig()

    def __init__(self, gcn: GCNConfig | None = None, train: TrainConfig | None = None) -> None:
        self.gcn = gcn or GCNConfig()
        if self.gcn.outputs != 1:
            raise ValueError(f"a regressor has one output, got outputs={self.gcn.outputs}")
        self.train = train or self.default_train
        self.transform = TargetTransform(self.train.target)
        self.model: keras.Model | None = None
        self.report: FitReport | None = None
        self._runner: BatchRunner | None = None

    # -- training ----------------------------------------------------------------------------------
    def build(self) -> keras.Model:
        """A fresh network, initialised from the seed (call before :meth:`init_trunk_from`)."""
        seed_everything(self.train.seed)
        self.model = build_gcn(self.gcn)
        self._runner = None
        return self.model

    def init_trunk_from(self, other: GCNRegressor) -> None:
        """Transfer learning: copy another trained predictor's trunk weights into this network."""
        if other.model is None:
            raise ValueError("the source predictor is not trained")
        if other.gcn.layers != self.gcn.layers or other.gcn.hidden != self.gcn.hidden:
            raise ValueError(f"trunk shapes differ: {other.gcn} vs {self.gcn}")
        if self.model is None:
            self.build()
        assert self.model is not None
        trunk_of(self.model).set_weights(trunk_of(other.model).get_weights())

    def fit(
        self,
        adjacency: np.ndarray,
        features: np.ndarray,
        y: np.ndarray,
        val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        progress: ProgressFn | None = None,
        keep_weights: bool = False,
    ) -> FitReport:
        """Train on (adjacency, features) -> y; early-stop on ``val`` = (adjacency, features, y).

        A fresh network is built unless ``keep_weights`` (e.g. after :meth:`init_trunk_from`).
        Without ``val`` the training loss drives the schedule and the stopping.
        """
        adjacency, features = check_encoding(adjacency, features, self.gcn)
        y = _check_targets(y, adjacency.shape[0], "y")
        if y.shape[0] < 2:
            raise ValueError(f"need at least 2 training samples, got {y.shape[0]}")
        self.transform = TargetTransform(self.train.target).fit(y)
        val_data = None
        if val is not None:
            va, vf, vy = val
            va, vf = check_encoding(va, vf, self.gcn)
            vy = _check_targets(vy, va.shape[0], "val y")
            val_data = (va, vf, self.transform.forward(vy))
        if self.model is None or not keep_weights:
            self.build()
        else:
            seed_everything(self.train.seed)
        assert self.model is not None
        start = time.perf_counter()
        history = _train(self.model, self.train, (adjacency, features, self.transform.forward(y)), val_data, progress)
        monitor = "val_loss" if val_data is not None else "loss"
        losses = history[monitor]
        best = int(np.argmin(losses))
        self.report = FitReport(
            epochs=len(losses),
            best_epoch=best + 1,
            best_loss=float(losses[best]),
            seconds=time.perf_counter() - start,
            history=history,
        )
        self._runner = None
        return self.report

    # -- inference ---------------------------------------------------------------------------------
    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Predictions in target units (float64, shape (B,)); each distinct graph is scored once."""
        if self.model is None:
            raise ValueError("the predictor is not trained (call fit or load)")
        adjacency, features = check_encoding(adjacency, features, self.gcn)
        if adjacency.shape[0] == 0:
            return np.zeros(0)
        adj_u, feat_u, inverse = unique_graphs(adjacency, features)
        if self._runner is None:
            self._runner = BatchRunner(self.model)
        raw = self._runner(adj_u, feat_u)[:, 0]
        return self.transform.inverse(raw)[inverse]

    def predict_nb201(self) -> np.ndarray:
        """Predictions for every NB201 index (15,625); NaN for the cells with no input->output path."""
        return predict_all_nb201(self.predict)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        if self.model is None:
            raise ValueError("nothing to save: the predictor is not trained")
        meta = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "gcn": self.gcn.to_dict(),
            "train": asdict(self.train),
            "target": asdict(self.transform),
            "report": None
            if self.report is None
            else {k: v for k, v in self.report.to_dict().items() if k != "history"},
            "extra": self._extra_state(),
        }
        return write_artifact(directory, meta, self.model)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path, meta = read_artifact(directory, cls.kind, formats=(FORMAT_VERSION,))
        obj = cls(GCNConfig.from_dict(meta["gcn"]), TrainConfig.from_dict(meta["train"]))
        obj.transform = TargetTransform(**meta["target"])
        obj.model = build_gcn(obj.gcn)
        obj.model.load_weights(path / WEIGHTS_FILE)
        if meta.get("report"):
            obj.report = FitReport(**meta["report"])
        obj._restore_extra(meta.get("extra"))
        return obj

    # Subclasses with state beyond the network (JSON-able) override these two.
    def _extra_state(self) -> dict[str, Any] | None:
        return None

    def _restore_extra(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            raise ValueError(f"a {self.kind!r} predictor has no extra state, but the saved one has {sorted(state)}")


def _check_targets(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} values for {n} graphs")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinite values ({int(np.sum(~np.isfinite(y)))} of {n})")
    return y


def _train(
    model: keras.Model,
    cfg: TrainConfig,
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    progress: ProgressFn | None,
) -> dict[str, list[float]]:
    """The training loop: one compiled call per epoch, plateau halving and early stopping in Python.

    An epoch's batches run inside one compiled loop, so batch 10 pays no per-step Python overhead
    (about 0.25 s per 900-model epoch on the idle 2-core machine). A short last batch is padded with
    zero-weight samples so the compiled shapes never change. The schedule is Keras's
    ReduceLROnPlateau (absolute ``min_delta`` 1e-4) and EarlyStopping (best weights restored). A
    relative threshold (PyTorch's default) and longer plateaus were tried on the Edge TPU: no better.
    Deterministic for a seed: shuffling uses a seeded NumPy generator, dropout Keras's seeded state,
    and XLA on CPU runs the same kernels in the same order (checked by a test). Another TF thread setting
    changes the float reduction order, and a long training then ends elsewhere.
    """
    adjacency, features, y = data
    n, bs = y.shape[0], min(cfg.batch_size, y.shape[0])
    steps = -(-n // bs)
    optimizer = keras.optimizers.AdamW(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay)
    variables = model.trainable_variables
    optimizer.build(variables)

    def pointwise(err: tf.Tensor) -> tf.Tensor:
        if cfg.loss == "huber":
            d = cfg.huber_delta
            small = tf.abs(err) <= d
            return tf.where(small, 0.5 * tf.square(err), d * (tf.abs(err) - 0.5 * d))
        return tf.square(err)

    def epoch_fn(a: tf.Tensor, f: tf.Tensor, t: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        total = tf.constant(0.0)
        for i in tf.range(steps):
            with tf.GradientTape() as tape:
                pred = model([a[i], f[i]], training=True)[:, 0]
                loss = tf.reduce_sum(w[i] * pointwise(pred - t[i])) / tf.reduce_sum(w[i])
            optimizer.apply(tape.gradient(loss, variables), variables)
            total += loss
        return total / tf.cast(steps, tf.float32)

    def eval_fn(a: tf.Tensor, f: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(pointwise(model([a, f], training=False)[:, 0] - t))

    run_epoch = tf.function(epoch_fn, jit_compile=cfg.jit_compile)
    evaluate = tf.function(eval_fn, jit_compile=cfg.jit_compile)
    rng = np.random.default_rng(cfg.seed)
    pad = steps * bs - n
    weights = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(steps, bs)
    history: dict[str, list[float]] = {"loss": [], "learning_rate": []}
    if val is not None:
        history["val_loss"] = []
        val_t = tuple(tf.constant(v) for v in val)
    lr = cfg.learning_rate
    best, best_weights, wait = math.inf, model.get_weights(), 0
    plateau_best, plateau_wait = math.inf, 0
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        order = np.concatenate([order, order[:pad]])  # padding rows carry zero weight
        batch = [x[order].reshape(steps, bs, *x.shape[1:]) for x in (adjacency, features, y)]
        loss = float(run_epoch(*(tf.constant(b) for b in batch), tf.constant(weights)))
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {loss})")
        history["loss"].append(loss)
        history["learning_rate"].append(lr)
        current = loss
        if val is not None:
            current = float(evaluate(*val_t))
            history["val_loss"].append(current)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, {k: v[-1] for k, v in history.items()})
        if current < best:  # early stopping: any improvement counts
            best, best_weights, wait = current, model.get_weights(), 0
        else:
            wait += 1
            if wait >= cfg.patience:
                break
        if current < plateau_best - cfg.lr_min_delta:  # plateau: gains under min_delta do not count
            plateau_best, plateau_wait = current, 0
        else:
            plateau_wait += 1
            if plateau_wait >= cfg.lr_patience:
                lr *= cfg.lr_factor
                optimizer.learning_rate.assign(lr)
                plateau_wait = 0
    model.set_weights(best_weights)
    return history
