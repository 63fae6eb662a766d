"""Multi-device pretraining of the latency GCN (not in the paper).

A lab that builds a latency predictor for a new device usually already has latencies of the same
architectures on other devices (LatBench: 13 devices). :class:`MultiDeviceGCN` is the BRP-NAS GCN
with one output per *other* device, trained on their standardised log latencies; its trunk (the
graph layers, see ``predictors.gcn``) then initialises the single-device :class:`LatencyPredictor`,
which is fine-tuned on the target device's few measured models as usual (:func:`fine_tune`).
Nothing of the target device is used for pretraining, so the pretrained trunk depends only on
which device is held out, not on the target's train/test split: it can be trained once and reused.

Pretraining data (:func:`group_targets`): each distinct graph once (the cells that prune to the same
network are one graph, ``predictors.gcn.unique_graphs``), labelled per device with the median
latency of its identical-graph group: the repeated timings of one network differ, and the median
is the best single value a graph-only predictor can give. Devices with missing timings (NaN) are
masked out of the loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from latbench.graph import group_medians
from predictors.artifact import WEIGHTS_FILE, read_artifact, write_artifact
from predictors.gcn import BatchRunner, GCNConfig, build_gcn, check_encoding, seed_everything, trunk_of, unique_graphs
from predictors.latency import LatencyPredictor
from predictors.regressor import FitReport, TargetTransform, TrainConfig

KIND = "multidevice_latency"


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining recipe: AdamW with a cosine-decayed learning rate over a fixed number of epochs.

    No early stopping: pretraining sees every graph of the other devices, there is nothing to hold out.
    Larger batches than Table S1's 10: ~5k graphs per epoch, and a batch of 10 would cost 5x the time.
    """

    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 64
    epochs: int = 60
    huber_delta: float = 0.2  # in standard deviations of log latency (as the robust single-device recipe)
    seed: int = 0
    jit_compile: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.epochs < 1 or self.learning_rate <= 0 or self.huber_delta <= 0:
            raise ValueError(f"need batch_size, epochs >= 1 and learning_rate, huber_delta > 0: {self}")


def group_targets(
    adjacency: np.ndarray, features: np.ndarray, latencies: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct graphs and, per device, the median latency of each graph's group (NaN: none measured).

    ``latencies``: (B, D) in ms, NaN where a model was not measured on a device.
    """
    lat = np.asarray(latencies, dtype=np.float64)
    if lat.ndim != 2 or lat.shape[0] != adjacency.shape[0]:
        raise ValueError(f"latencies must have shape ({adjacency.shape[0]}, devices), got {lat.shape}")
    adj_u, feat_u, inverse = unique_graphs(np.asarray(adjacency, np.float32), np.asarray(features, np.float32))
    return adj_u, feat_u, group_medians(lat, inverse, adj_u.shape[0])


class MultiDeviceGCN:
    """The GCN with one output per device, regressing standardised log latencies (masked where NaN)."""

    def __init__(self, devices: Sequence[str], gcn: GCNConfig | None = None, config: PretrainConfig | None = None):
        if not devices:
            raise ValueError("need at least one pretraining device")
        self.devices = list(devices)
        self.gcn = replace(gcn or GCNConfig(), outputs=len(self.devices))
        self.config = config or PretrainConfig()
        self.mean = np.zeros(len(self.devices))
        self.std = np.ones(len(self.devices))
        self.model: keras.Model | None = None
        self.report: FitReport | None = None

    def fit(self, adjacency: np.ndarray, features: np.ndarray, latencies: np.ndarray) -> FitReport:
        """Train on (B, D) latencies in ms (NaN = not measured); pass group medians (:func:`group_targets`)."""
        adjacency, features = check_encoding(adjacency, features, self.gcn)
        lat = np.asarray(latencies, dtype=np.float64)
        if lat.shape != (adjacency.shape[0], len(self.devices)):
            raise ValueError(f"latencies must have shape ({adjacency.shape[0]}, {len(self.devices)}), got {lat.shape}")
        if np.any(lat[np.isfinite(lat)] <= 0):
            raise ValueError("latencies must be positive")
        log = np.log(np.where(np.isfinite(lat), lat, 1.0))
        mask = np.isfinite(lat)
        if np.any(mask.sum(0) < 2):
            raise ValueError("every pretraining device needs at least 2 measured graphs")
        self.mean = np.array([log[mask[:, d], d].mean() for d in range(lat.shape[1])])
        self.std = np.array([max(log[mask[:, d], d].std(), 1e-6) for d in range(lat.shape[1])])
        target = np.where(mask, (log - self.mean) / self.std, 0.0).astype(np.float32)
        seed_everything(self.config.seed)
        self.model = build_gcn(self.gcn, name="multidevice_gcn")
        start = time.perf_counter()
        losses = _pretrain(self.model, self.config, adjacency, features, target, mask.astype(np.float32))
        self.report = FitReport(
            epochs=len(losses),
            best_epoch=len(losses),
            best_loss=losses[-1],
            seconds=time.perf_counter() - start,
            history={"loss": losses},
        )
        return self.report

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Latencies (ms) per device, shape (B, D)."""
        if self.model is None:
            raise ValueError("the multi-device GCN is not trained (call fit or load)")
        adjacency, features = check_encoding(adjacency, features, self.gcn)
        raw = BatchRunner(self.model)(adjacency, features).astype(np.float64)
        return np.exp(raw * self.std + self.mean)

    def init_trunk_of(self, predictor: LatencyPredictor) -> None:
        """Build ``predictor``'s network and copy this trunk into it (its head stays freshly initialised)."""
        if self.model is None:
            raise ValueError("the multi-device GCN is not trained (call fit or load)")
        if (predictor.gcn.layers, predictor.gcn.hidden) != (self.gcn.layers, self.gcn.hidden):
            raise ValueError(f"trunk shapes differ: {self.gcn} vs {predictor.gcn}")
        predictor.build()
        assert predictor.model is not None
        trunk_of(predictor.model).set_weights(trunk_of(self.model).get_weights())

    def save(self, directory: str | Path) -> Path:
        if self.model is None:
            raise ValueError("nothing to save: the multi-device GCN is not trained")
        meta = {
            "kind": KIND,
            "devices": self.devices,
            "gcn": self.gcn.to_dict(),
            "config": asdict(self.config),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "report": None if self.report is None else {**self.report.to_dict(), "history": {}},
        }
        return write_artifact(directory, meta, self.model)

    @classmethod
    def load(cls, directory: str | Path) -> MultiDeviceGCN:
        path, meta = read_artifact(directory, KIND, what="multi-device GCN")
        obj = cls(meta["devices"], GCNConfig.from_dict(meta["gcn"]), PretrainConfig(**meta["config"]))
        obj.mean, obj.std = np.asarray(meta["mean"]), np.asarray(meta["std"])
        obj.model = build_gcn(obj.gcn, name="multidevice_gcn")
        obj.model.load_weights(path / WEIGHTS_FILE)
        if meta.get("report"):
            obj.report = FitReport(**meta["report"])
        return obj


def fine_tune(
    pretrained: MultiDeviceGCN,
    adjacency: np.ndarray,
    features: np.ndarray,
    y: np.ndarray,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    train: TrainConfig | None = None,
    prior: str | None = None,
    gcn: GCNConfig | None = None,
    head_only: bool = False,
) -> LatencyPredictor:
    """A :class:`LatencyPredictor` for the target device, its trunk initialised from ``pretrained``.

    Without a prior the head starts as the ridge read-out of the trunk (:func:`fit_head`); with
    ``head_only`` that is all (the trunk stays as pretrained), else the whole network is then trained
    with ``train``. The result is an ordinary single-device predictor (same save/load and serving path).
    """
    predictor = LatencyPredictor(gcn or replace(pretrained.gcn, outputs=1), train, prior=prior)
    pretrained.init_trunk_of(predictor)
    if prior is None:
        fit_head(predictor, adjacency, features, y, val)
    if not head_only:
        predictor.fit(adjacency, features, y, val=val, keep_weights=True)
    return predictor


def fit_head(
    predictor: LatencyPredictor,
    adjacency: np.ndarray,
    features: np.ndarray,
    y: np.ndarray,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    alphas: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
) -> float:
    """Set ``predictor``'s head by ridge regression on its trunk's embeddings (a linear probe).

    The target is what :meth:`LatencyPredictor.fit` regresses (the standardised transform of ``y``),
    so fine-tuning starts from the best linear read-out of the pretrained trunk rather than from a
    random head. The ridge penalty is picked on ``val`` (on the training set without it). Returns it.
    """
    assert predictor.model is not None
    predictor.transform = TargetTransform(predictor.train.target).fit(np.asarray(y, dtype=np.float64))
    runner = BatchRunner(trunk_of(predictor.model))
    x = runner(*check_encoding(adjacency, features, predictor.gcn)).astype(np.float64)
    t = predictor.transform.forward(y).astype(np.float64)
    if val is not None:
        xv = runner(*check_encoding(val[0], val[1], predictor.gcn)).astype(np.float64)
        tv = predictor.transform.forward(val[2]).astype(np.float64)
    else:
        xv, tv = x, t
    # Standardised columns, so that one penalty suits every embedding unit; folded back into the head.
    mu, sd = x.mean(0), x.std(0) + 1e-6
    design = np.c_[(x - mu) / sd, np.ones(len(x))]
    gram, rhs = design.T @ design, design.T @ t
    penalty = np.diag(np.r_[np.ones(x.shape[1]), 0.0])  # the bias is not penalised
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in alphas:
        w = np.linalg.solve(gram + alpha * len(x) * penalty, rhs)
        err = float(np.mean(np.abs(np.c_[(xv - mu) / sd, np.ones(len(xv))] @ w - tv)))
        if best is None or err < best[0]:
            best = (err, alpha, w)
    assert best is not None
    kernel = best[2][:-1] / sd
    bias = best[2][-1] - float(kernel @ mu)
    head = predictor.model.get_layer("head")
    head.set_weights([kernel[:, None].astype(np.float32), np.array([bias], dtype=np.float32)])
    predictor._runner = None
    return best[1]


def _pretrain(
    model: keras.Model,
    cfg: PretrainConfig,
    adjacency: np.ndarray,
    features: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
) -> list[float]:
    """Masked Huber regression, one compiled call per epoch (as ``predictors.regressor._train``)."""
    n = target.shape[0]
    bs = min(cfg.batch_size, n)
    steps = -(-n // bs)
    pad = steps * bs - n
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=cfg.epochs * steps)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)
    variables = model.trainable_variables
    optimizer.build(variables)
    d = cfg.huber_delta

    def epoch_fn(a: tf.Tensor, f: tf.Tensor, t: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
        total = tf.constant(0.0)
        for i in tf.range(steps):
            with tf.GradientTape() as tape:
                err = tf.abs(model([a[i], f[i]], training=True) - t[i])
                point = tf.where(err <= d, 0.5 * tf.square(err), d * (err - 0.5 * d))
                loss = tf.reduce_sum(m[i] * point) / tf.maximum(tf.reduce_sum(m[i]), 1.0)
            optimizer.apply(tape.gradient(loss, variables), variables)
            total += loss
        return total / tf.cast(steps, tf.float32)

    run_epoch = tf.function(epoch_fn, jit_compile=cfg.jit_compile)
    rng = np.random.default_rng(cfg.seed)
    losses: list[float] = []
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        order = np.concatenate([order, order[:pad]])
        m = mask[order].copy()
        if pad:
            m[n:] = 0.0  # padding rows repeat real ones: weight zero, so no graph counts twice
        batch = [x[order].reshape(steps, bs, *x.shape[1:]) for x in (adjacency, features, target)]
        loss = float(run_epoch(*(tf.constant(b) for b in batch), tf.constant(m.reshape(steps, bs, -1))))
        if not math.isfinite(loss):
            raise FloatingPointError(f"pretraining diverged at epoch {epoch + 1} (loss {loss})")
        losses.append(loss)
    return losses
