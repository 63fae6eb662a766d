"""Binary relation predictor (BRP-NAS §4): which of two models is more accurate.

The GCN trunk (shared weights) embeds both models; the two embeddings are concatenated and a dense
layer gives 2 logits. Training target: softmax of the two true accuracies (percent, divided by
``temperature``); loss: KL(softmax(true) || softmax(logits)). Training uses both orderings of every
pair of training models (for large sets, a fresh random sample of ``pairs_per_epoch`` ordered pairs
each epoch).

Ranking many candidates: the head is linear on the concatenation, so the logit difference for
"i beats j" is ``u_i + v_j + c`` with ``u = e W_first``, ``v = e W_second`` (each the difference of the
two logit columns of the head's halves) and ``c`` the bias difference. The trunk therefore runs once
per candidate, and every pairwise probability ``P(i beats j) = sigmoid(u_i + v_j + c)`` comes from two
vectors. A candidate's score is its expected number of wins against all the others,
``sum_j P(i beats j)`` (a soft round-robin / Borda count); candidates are ranked by score. This is
an equivalent of sorting with the learned comparator that stays well defined when the relation is
not perfectly transitive or antisymmetric, and costs one batched pass plus O(N^2) scalar work done
in chunks. :meth:`BinaryRelationPredictor.antisymmetry` measures how often the relation is
antisymmetric (exactly one of "i beats j", "j beats i" holds); the paper reports 98% on 1,000 models.

Saved form: ``config.json`` + ``model.weights.h5`` (no pickles), like the regressors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

import keras
import numpy as np
import tensorflow as tf

from predictors.artifact import WEIGHTS_FILE, read_artifact, write_artifact
from predictors.gcn import BatchRunner, GCNConfig, build_trunk, check_encoding, seed_everything, unique_graphs
from predictors.regressor import FORMAT_VERSION, FitReport, GCNRegressor

KIND = "binary_relation"
ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class BinaryTrainConfig:
    learning_rate: float = 8e-4
    weight_decay: float = 5e-4
    batch_size: int = 64
    epochs: int = 60
    pairs_per_epoch: int = 20_000  # cap on ordered pairs per epoch (all pairs when fewer)
    temperature: float = 1.0  # accuracies in percent are divided by this before the softmax
    seed: int = 0
    jit_compile: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.epochs < 1 or self.pairs_per_epoch < 1:
            raise ValueError(f"batch_size, epochs and pairs_per_epoch must be >= 1: {self}")
        if self.learning_rate <= 0 or self.weight_decay < 0 or self.temperature <= 0:
            raise ValueError(f"need learning_rate > 0, weight_decay >= 0, temperature > 0: {self}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinaryTrainConfig:
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise ValueError(f"unknown binary training config keys {sorted(set(data) - known)}")
        return cls(**data)


def build_binary(config: GCNConfig) -> keras.Model:
    """(adj_a, feat_a, adj_b, feat_b) -> 2 logits (index 0: "a is better"); the trunk is shared."""
    trunk = build_trunk(config)
    n, f = config.nodes, config.features
    inputs = [
        keras.Input(shape=(n, n), name="adjacency_a"),
        keras.Input(shape=(n, f), name="features_a"),
        keras.Input(shape=(n, n), name="adjacency_b"),
        keras.Input(shape=(n, f), name="features_b"),
    ]
    joined = keras.layers.Concatenate(name="pair")([trunk(inputs[:2]), trunk(inputs[2:])])
    logits = keras.layers.Dense(2, name="relation")(joined)
    return keras.Model(inputs, logits, name="binary_relation")


class BinaryRelationPredictor:
    def __init__(self, gcn: GCNConfig | None = None, train: BinaryTrainConfig | None = None) -> None:
        self.gcn = gcn or GCNConfig()
        self.train = train or BinaryTrainConfig()
        self.model: keras.Model | None = None
        self.report: FitReport | None = None
        self._runner: BatchRunner | None = None

    @property
    def trunk(self) -> keras.Model:
        if self.model is None:
            raise ValueError("the predictor is not built or trained")
        return self.model.get_layer("gcn_trunk")

    def build(self) -> keras.Model:
        seed_everything(self.train.seed)
        self.model = build_binary(self.gcn)
        self._runner = None
        return self.model

    def init_trunk_from(self, other: GCNRegressor) -> None:
        """Start from a trained regressor's trunk (e.g. an accuracy or latency predictor)."""
        if other.model is None:
            raise ValueError("the source predictor is not trained")
        if self.model is None:
            self.build()
        self.trunk.set_weights(other.model.get_layer("gcn_trunk").get_weights())

    # -- training ------------------------------------------------------------------------------------
    def fit(
        self,
        adjacency: np.ndarray,
        features: np.ndarray,
        accuracy: np.ndarray,
        progress: ProgressFn | None = None,
        keep_weights: bool = False,
    ) -> FitReport:
        """Train on every ordered pair of the given models (accuracies in percent)."""
        adjacency, features = check_encoding(adjacency, features, self.gcn)
        acc = np.asarray(accuracy, dtype=np.float32).reshape(-1)
        n = adjacency.shape[0]
        if acc.shape[0] != n:
            raise ValueError(f"accuracy has {acc.shape[0]} values for {n} graphs")
        if n < 2:
            raise ValueError(f"need at least 2 models to form pairs, got {n}")
        if not np.all(np.isfinite(acc)):
            raise ValueError("accuracy contains NaN or infinite values")
        if self.model is None or not keep_weights:
            self.build()
        else:
            seed_everything(self.train.seed)
        assert self.model is not None
        cfg = self.train
        model = self.model
        optimizer = keras.optimizers.AdamW(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay)
        variables = model.trainable_variables
        optimizer.build(variables)
        a_all, f_all = tf.constant(adjacency), tf.constant(features)
        t_all = tf.constant(acc / cfg.temperature)

        def epoch_fn(pairs: tf.Tensor) -> tf.Tensor:  # pairs: (steps, batch, 2) indices
            total = tf.constant(0.0)
            for i in tf.range(tf.shape(pairs)[0]):
                first, second = pairs[i, :, 0], pairs[i, :, 1]
                target = tf.nn.softmax(tf.stack([tf.gather(t_all, first), tf.gather(t_all, second)], axis=1))
                with tf.GradientTape() as tape:
                    logits = model(
                        [
                            tf.gather(a_all, first),
                            tf.gather(f_all, first),
                            tf.gather(a_all, second),
                            tf.gather(f_all, second),
                        ],
                        training=True,
                    )
                    kl = tf.reduce_sum(target * (tf.math.log(target + 1e-12) - tf.nn.log_softmax(logits)), axis=1)
                    loss = tf.reduce_mean(kl)
                optimizer.apply(tape.gradient(loss, variables), variables)
                total += loss
            return total / tf.cast(tf.shape(pairs)[0], tf.float32)

        run_epoch = tf.function(epoch_fn, jit_compile=cfg.jit_compile)
        rng = np.random.default_rng(cfg.seed)
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        all_pairs = np.stack([ii.ravel(), jj.ravel()], axis=1)
        all_pairs = all_pairs[all_pairs[:, 0] != all_pairs[:, 1]].astype(np.int32)  # both orderings
        per_epoch = min(cfg.pairs_per_epoch, all_pairs.shape[0])
        bs = min(cfg.batch_size, per_epoch)
        steps = per_epoch // bs
        history: dict[str, list[float]] = {"loss": []}
        start = time.perf_counter()
        for epoch in range(cfg.epochs):
            pick = rng.permutation(all_pairs.shape[0])[: steps * bs]
            loss = float(run_epoch(tf.constant(all_pairs[pick].reshape(steps, bs, 2))))
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {loss})")
            history["loss"].append(loss)
            if progress is not None:
                progress(epoch + 1, cfg.epochs, {"loss": loss})
        best = int(np.argmin(history["loss"]))
        self.report = FitReport(
            epochs=cfg.epochs,
            best_epoch=best + 1,
            best_loss=history["loss"][best],
            seconds=time.perf_counter() - start,
            history=history,
        )
        return self.report

    # -- inference -----------------------------------------------------------------------------------
    def _pair_terms(self, adjacency: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(u, v, c) with logit0 - logit1 = u_i + v_j + c for "i (first) vs j (second)"."""
        if self.model is None:
            raise ValueError("the predictor is not trained (call fit or load)")
        adjacency, features = check_encoding(adjacency, features, self.gcn)
        adj_u, feat_u, inverse = unique_graphs(adjacency, features)
        if self._runner is None:
            self._runner = BatchRunner(self.trunk)
        emb = np.asarray(self._runner(adj_u, feat_u), dtype=np.float64)[inverse]
        kernel, bias = (np.asarray(w, dtype=np.float64) for w in self.model.get_layer("relation").get_weights())
        h = self.gcn.hidden
        diff = kernel[:, 0] - kernel[:, 1]
        return emb @ diff[:h], emb @ diff[h:], float(bias[0] - bias[1])

    def compare(self, adj_a: np.ndarray, feat_a: np.ndarray, adj_b: np.ndarray, feat_b: np.ndarray) -> np.ndarray:
        """P(model a is more accurate than model b), pairwise over two equal-length batches."""
        if self.model is None:
            raise ValueError("the predictor is not trained (call fit or load)")
        adj_a, feat_a = check_encoding(adj_a, feat_a, self.gcn)
        adj_b, feat_b = check_encoding(adj_b, feat_b, self.gcn)
        if adj_a.shape[0] != adj_b.shape[0]:
            raise ValueError(f"batches differ in size: {adj_a.shape[0]} vs {adj_b.shape[0]}")
        logits = self.model.predict([adj_a, feat_a, adj_b, feat_b], batch_size=1024, verbose=0)
        return np.asarray(tf.nn.softmax(logits)[:, 0], dtype=np.float64)

    def win_matrix(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        """P[i, j] = P(i beats j) for a (small) set of models; diagonal NaN."""
        u, v, c = self._pair_terms(adjacency, features)
        p = _sigmoid(u[:, None] + v[None, :] + c)
        np.fill_diagonal(p, np.nan)
        return p

    def scores(self, adjacency: np.ndarray, features: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Expected wins of each candidate against all the others (higher = predicted more accurate)."""
        u, v, c = self._pair_terms(adjacency, features)
        u32, v32 = u.astype(np.float32), (v + c).astype(np.float32)
        out = np.empty(u.shape[0])
        for start in range(0, u.shape[0], chunk):
            # sigmoid(x) = (1 + tanh(x / 2)) / 2, in place and in float32: ~10x faster than float64
            x = u32[start : start + chunk, None] + v32[None, :]
            x *= 0.5
            np.tanh(x, out=x)
            block = 0.5 * x.shape[1] + 0.5 * x.sum(axis=1, dtype=np.float64)
            out[start : start + chunk] = block - _sigmoid(u[start : start + chunk] + v[start : start + chunk] + c)
        return out

    def rank(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Indices of the candidates from predicted best to worst."""
        return np.argsort(-self.scores(adjacency, features), kind="stable")

    def antisymmetry(self, adjacency: np.ndarray, features: np.ndarray) -> float:
        """Share of unordered pairs {i, j} where exactly one of "i beats j", "j beats i" is predicted."""
        p = self.win_matrix(adjacency, features)
        wins = p > 0.5
        iu = np.triu_indices(p.shape[0], k=1)
        return float(np.mean(wins[iu] != wins.T[iu]))

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        if self.model is None:
            raise ValueError("nothing to save: the predictor is not trained")
        meta = {"format": FORMAT_VERSION, "kind": KIND, "gcn": self.gcn.to_dict(), "train": asdict(self.train)}
        return write_artifact(directory, meta, self.model)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path, meta = read_artifact(directory, KIND)
        obj = cls(GCNConfig.from_dict(meta["gcn"]), BinaryTrainConfig.from_dict(meta["train"]))
        obj.model = build_binary(obj.gcn)
        obj.model.load_weights(path / WEIGHTS_FILE)
        return obj


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic
