"""The BRP-NAS graph convolutional network (paper §3, Table S1), in Keras 3.

Input: the encoding of ``latbench.graph.encode``: a 9x9 adjacency with ``A[i, j] = 1`` when node j
feeds node i, self-loops, and a global node (last) fed by every live node; 9x6 one-hot node features.
The adjacency is used as is (unnormalised), as in the paper.

Each of the L layers computes ``H' = relu(A H W + b)``; between layers come a LayerNorm and dropout.
The readout is the global node's embedding after the last layer, mapped by a dense layer to the
outputs. Since only the global node is read out, the last layer computes only that row
(``A[global] H W``): mathematically the same as computing every row and taking the last one, and
it makes the batch scoring of all of NB201 about a third cheaper.

The network is split into a *trunk* (graph layers -> global-node embedding, what the binary relation
predictor shares and what transfer learning copies) and a *head* (dense layer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import keras
import numpy as np
import tensorflow as tf

GLOBAL_NODE = -1  # the encoding puts the global node last


@dataclass(frozen=True)
class GCNConfig:
    """Hyperparameters of the network (defaults: paper Table S1, latency predictor)."""

    layers: int = 4
    hidden: int = 600
    dropout: float = 0.002
    nodes: int = 9
    features: int = 6
    outputs: int = 1
    layer_norm: bool = True  # LayerNorm between graph layers (the paper's normalisation layer)

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"a GCN needs at least 1 graph layer, got layers={self.layers}")
        if self.hidden < 1 or self.nodes < 2 or self.features < 1 or self.outputs < 1:
            raise ValueError(f"hidden, nodes, features and outputs must be positive: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GCNConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown GCN config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class GraphConv(keras.layers.Layer):
    """``relu(A H W + b)``; with ``global_only`` only the global node's row (shape (B, 1, units))."""

    def __init__(self, units: int, global_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.global_only = global_only

    def build(self, input_shape: Any) -> None:
        _, feature_shape = input_shape
        self.kernel = self.add_weight(
            name="kernel", shape=(int(feature_shape[-1]), self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        adjacency, h = inputs
        if self.global_only:
            # Aggregate first: (B,1,N)@(B,N,F) then one FxU product per graph.
            return keras.ops.relu(
                keras.ops.matmul(keras.ops.matmul(adjacency[:, GLOBAL_NODE:, :], h), self.kernel) + self.bias
            )
        return keras.ops.relu(keras.ops.matmul(adjacency, keras.ops.matmul(h, self.kernel)) + self.bias)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "global_only": self.global_only}


def build_trunk(config: GCNConfig, name: str = "gcn_trunk") -> keras.Model:
    """(adjacency (B,N,N), features (B,N,F)) -> global-node embedding (B, hidden)."""
    adjacency = keras.Input(shape=(config.nodes, config.nodes), name="adjacency")
    features = keras.Input(shape=(config.nodes, config.features), name="features")
    h = features
    for layer in range(config.layers):
        last = layer == config.layers - 1
        h = GraphConv(config.hidden, global_only=last, name=f"graph_conv_{layer}")([adjacency, h])
        if not last:
            if config.layer_norm:
                h = keras.layers.LayerNormalization(name=f"norm_{layer}")(h)
            h = keras.layers.Dropout(config.dropout, name=f"dropout_{layer}")(h)
    embedding = keras.layers.Reshape((config.hidden,), name="global_embedding")(h)
    return keras.Model([adjacency, features], embedding, name=name)


def build_gcn(config: GCNConfig, name: str = "gcn") -> keras.Model:
    """Trunk + dense head: (adjacency, features) -> (B, outputs). The trunk is the layer ``gcn_trunk``."""
    trunk = build_trunk(config)
    adjacency = keras.Input(shape=(config.nodes, config.nodes), name="adjacency")
    features = keras.Input(shape=(config.nodes, config.features), name="features")
    out = keras.layers.Dense(config.outputs, name="head")(trunk([adjacency, features]))
    return keras.Model([adjacency, features], out, name=name)


def trunk_of(model: keras.Model) -> keras.Model:
    """The shared trunk sub-model of a network built by :func:`build_gcn`."""
    return model.get_layer("gcn_trunk")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TF (weights init, dropout) so that a seed fixes the result."""
    keras.utils.set_random_seed(seed)
    # No tf.config.experimental.enable_op_determinism(): it turns XLA off in Keras, and on CPU the
    # XLA kernels already give bit-identical results run to run (tests check it).


def check_encoding(adjacency: np.ndarray, features: np.ndarray, config: GCNConfig) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes against the config and return float32 arrays."""
    adjacency = np.asarray(adjacency, dtype=np.float32)
    features = np.asarray(features, dtype=np.float32)
    n, f = config.nodes, config.features
    if adjacency.ndim != 3 or adjacency.shape[1:] != (n, n):
        raise ValueError(f"adjacency must have shape (B, {n}, {n}), got {adjacency.shape}")
    if features.ndim != 3 or features.shape[1:] != (n, f):
        raise ValueError(f"features must have shape (B, {n}, {f}), got {features.shape}")
    if adjacency.shape[0] != features.shape[0]:
        raise ValueError(f"adjacency and features differ in batch size: {adjacency.shape[0]} vs {features.shape[0]}")
    return adjacency, features


def unique_graphs(adjacency: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct graphs of a batch: ``(adjacency, features)`` of one representative each, and ``inverse``.

    The network's output does not depend on how nodes are numbered (each layer is permutation
    equivariant and the readout is the global node), so batch scoring runs it once per distinct
    graph. Nodes are first put in a canonical-ish order (:func:`canonical_order`), which maps
    equivalent cells to the same encoding: NB201's 15,284 valid cells give 5,256 graphs, the
    number of distinct pruned cells, where plain encoding dedupe gives 8,686. Graphs it fails to
    merge are simply scored twice.
    """
    # Exact duplicates first (cheap), then the canonical order on what is left.
    first0, inverse0 = _unique_rows(adjacency, features)
    adjacency, features = adjacency[first0], features[first0]
    order = canonical_order(adjacency, features)
    adj = np.take_along_axis(np.take_along_axis(adjacency, order[:, :, None], axis=1), order[:, None, :], axis=2)
    feat = np.take_along_axis(features, order[:, :, None], axis=1)
    first, inverse = _unique_rows(adj, feat)
    return adj[first], feat[first], inverse[inverse0]


def _unique_rows(adjacency: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index of each distinct (adjacency, features) pair and the map back."""
    b = adjacency.shape[0]
    rows = np.concatenate([adjacency.reshape(b, -1), features.reshape(b, -1)], axis=1)
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    keys = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.ravel()


_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64, wrapping): a cheap hash of node colours."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX[0]
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX[1]
    return x ^ (x >> np.uint64(31))


def canonical_order(adjacency: np.ndarray, features: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Per graph, a node permutation (B, N) that sorts nodes by a Weisfeiler-Lehman colour.

    Colours start from the one-hot label and are refined from the colours of predecessors and
    successors; cut nodes (no label) go after live ones; the global node stays last. Ties keep
    slot order, so two isomorphic graphs may still differ (rare; it only costs dedupe).
    """
    b, n, _ = adjacency.shape
    body = n - 1  # the global node (last) keeps its place
    feeds = adjacency[:, :body, :body].astype(bool) & ~np.eye(body, dtype=bool)  # feeds[b, i, j]: j -> i
    live = features[:, :body].any(axis=-1)
    colour = _mix(np.where(live, features[:, :body].argmax(axis=-1) + 1, 0).astype(np.uint64))
    with np.errstate(over="ignore"):
        for _ in range(rounds):
            up = (feeds * _mix(colour + _MIX[2])[:, None, :]).sum(axis=2, dtype=np.uint64)
            down = (feeds * _mix(colour ^ _MIX[1])[:, :, None]).sum(axis=1, dtype=np.uint64)
            colour = _mix(colour * _MIX[2] + _mix(up) + _mix(down * _MIX[0]))
    colour = np.where(live, colour >> np.uint64(1), np.uint64(2**63))  # cut nodes sort last
    order = np.argsort(colour, axis=1, kind="stable")
    return np.concatenate([order, np.full((b, 1), body)], axis=1)


class BatchRunner:
    """Inference of a Keras model in chunks, each padded to a power-of-two size (few traced shapes).

    Defaults measured on the 2-core CPU machine: 256-graph chunks keep each layer's activations in
    cache, and TF's own (oneDNN) kernels beat XLA's CPU matmuls here, so ``jit`` is off for inference
    (scoring NB201's 5,256 distinct graphs: 0.6-0.9 s with 256 vs 1.3-2.2 s with 1024 or with XLA, on
    a loaded machine).
    """

    def __init__(self, model: keras.Model, chunk: int = 256, jit: bool = False) -> None:
        self.model = model
        self.chunk = chunk
        self._fn = tf.function(lambda a, f: model([a, f], training=False), jit_compile=jit, reduce_retracing=True)

    def __call__(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        b = adjacency.shape[0]
        outs = []
        for start in range(0, b, self.chunk):
            a = adjacency[start : start + self.chunk]
            f = features[start : start + self.chunk]
            size = a.shape[0]
            padded = _bucket(size, self.chunk)
            if padded > size:  # pad so that few distinct shapes are ever compiled
                a = np.concatenate([a, np.zeros((padded - size, *a.shape[1:]), a.dtype)])
                f = np.concatenate([f, np.zeros((padded - size, *f.shape[1:]), f.dtype)])
            outs.append(np.asarray(self._fn(tf.constant(a), tf.constant(f)))[:size])
        if not outs:
            return np.zeros((0, *self.model.output_shape[1:]), dtype=np.float32)
        return np.concatenate(outs)


def _bucket(size: int, chunk: int) -> int:
    """Smallest power of two >= size (at least 16), capped at the chunk size."""
    return min(chunk, max(16, 1 << (size - 1).bit_length()))
