"""Baseline latency predictors with the GCN predictor's interface: ``fit(adj, feat, y_ms)``, ``predict(adj, feat)``.

* :class:`FlopsPredictor` — the FLOPs proxy: latency = a · FLOPs + b, fitted by least squares.
* :class:`LayerwisePredictor` — the layer-wise predictor: the sum of per-op latencies, scaled by one
  factor fitted by least squares on the training set.

Per-op latencies on LatBench devices: LatBench holds end-to-end latencies only, so when no measured
per-op costs are given the per-op costs are *fitted* by non-negative least squares on the training
set, over op-count features of the pruned cell: the number of 1x1 convolutions, 3x3 convolutions,
average pools and element-wise additions (a node with k inputs adds k-1 tensors), plus a constant
(the fixed part of the network: stem, reduction blocks, head). An NB201 network repeats the same cell
in all 15 cell positions (3 stages x 5), so the count of an op kind is the same multiple of the cell's
count in every stage: per-stage costs are not identifiable from end-to-end data, and each fitted cost
is that op kind's total over the network's stages. The scale factor is then ~1 by construction.
With measured per-op costs (``op_costs=``, e.g. timed on a real device by the agent's per-op models)
only the factor is fitted, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from latbench.graph import FEATURES, CellGraph

OP_KINDS: tuple[str, ...] = ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "add")
FIXED = "fixed"  # the network's constant part
FlopsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check(adjacency: np.ndarray, features: np.ndarray, y: np.ndarray | None = None) -> None:
    if adjacency.ndim != 3 or features.ndim != 3 or adjacency.shape[0] != features.shape[0]:
        raise ValueError(f"expected (B,N,N) adjacency and (B,N,F) features, got {adjacency.shape}, {features.shape}")
    if features.shape[2] != len(FEATURES):
        raise ValueError(f"features must have {len(FEATURES)} columns {FEATURES}, got {features.shape[2]}")
    if y is not None:
        if y.shape != (adjacency.shape[0],):
            raise ValueError(f"y must have one value per graph ({adjacency.shape[0]}), got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values")


def decode(adjacency: np.ndarray, features: np.ndarray) -> CellGraph:
    """The cell graph of one encoding (inverse of ``latbench.graph.encode``; the global node dropped)."""
    slots = adjacency.shape[0] - 1
    labels = tuple(FEATURES[int(np.argmax(row))] if row.any() else None for row in features[:slots])
    edges = frozenset(
        (src, dst) for dst in range(slots) for src in range(slots) if src != dst and adjacency[dst, src] > 0
    )
    return CellGraph(labels=labels, edges=edges)


def nb201_flops(adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
    """FLOPs of the NB201 networks of a batch of encodings (``latbench.cost``), once per distinct encoding."""
    from latbench.cost import network_cost  # lazy: the FLOPs counter is optional for the other predictors

    b = adjacency.shape[0]
    rows = np.ascontiguousarray(np.concatenate([adjacency.reshape(b, -1), features.reshape(b, -1)], 1), np.float32)
    _, first, inverse = np.unique(
        rows.view(np.dtype((np.void, rows.shape[1] * 4))).ravel(), return_index=True, return_inverse=True
    )
    flops = np.array([float(network_cost(decode(adjacency[i], features[i])).flops) for i in first])
    return flops[inverse.ravel()]


class FlopsPredictor:
    """latency ≈ a · FLOPs + b (least squares). ``flops_fn`` maps encodings to FLOPs (default: NB201)."""

    kind = "flops"

    def __init__(self, flops_fn: FlopsFn | None = None) -> None:
        self.flops_fn = flops_fn or nb201_flops
        self.coef: tuple[float, float] | None = None  # (a, b)

    def fit(self, adjacency: np.ndarray, features: np.ndarray, y_ms: np.ndarray) -> FlopsPredictor:
        y = np.asarray(y_ms, dtype=np.float64).reshape(-1)
        _check(adjacency, features, y)
        x = np.asarray(self.flops_fn(adjacency, features), dtype=np.float64)
        design = np.stack([x, np.ones_like(x)], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        self.coef = (float(a), float(b))
        return self

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise ValueError("the FLOPs predictor is not fitted")
        _check(adjacency, features)
        a, b = self.coef
        return a * np.asarray(self.flops_fn(adjacency, features), dtype=np.float64) + b


def op_counts(adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(B, 5) features: counts of conv1x1, conv3x3, avgpool, additions in the pruned cell, and 1."""
    _check(adjacency, features)
    slots = adjacency.shape[1] - 1
    ops = features[:, :slots, :3].sum(axis=1)  # the first three feature columns are the op kinds
    live = features[:, :slots].any(axis=2)
    indegree = adjacency[:, :slots, :slots].sum(axis=2) - live  # minus the self-loop
    adds = np.clip(indegree - 1, 0, None)[:, 1:].sum(axis=1)  # the input node takes no inputs
    return np.concatenate([ops, adds[:, None], np.ones((ops.shape[0], 1))], axis=1).astype(np.float64)


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Non-negative least squares min ||a x - b|| s.t. x >= 0 (Lawson & Hanson's active-set method)."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 10 * np.finfo(float).eps * np.linalg.norm(a, 1) * max(m, n)
    w = a.T @ (b - a @ x)
    for _ in range(max_iter or 3 * n):
        if passive.all() or not np.any(w[~passive] > tol):
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            bad = passive & (z <= 0)
            alpha = np.min(x[bad] / (x[bad] - z[bad]))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        w = a.T @ (b - a @ x)
    return x


class LayerwisePredictor:
    """Sum of per-op latencies x one fitted factor (see the module docstring for fitted per-op costs)."""

    kind = "layerwise"

    def __init__(self, op_costs: Mapping[str, float] | None = None) -> None:
        names = (*OP_KINDS, FIXED)
        if op_costs is not None:
            missing = set(names) - set(op_costs)
            if missing:
                raise ValueError(f"op_costs lacks {sorted(missing)} (needs {list(names)}, in ms)")
            if any(op_costs[k] < 0 for k in names):
                raise ValueError("op costs must be >= 0 ms")
        self.measured = op_costs is not None
        self.op_costs: dict[str, float] | None = {k: float(op_costs[k]) for k in names} if op_costs else None
        self.factor: float | None = None

    def _sum(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        assert self.op_costs is not None
        costs = np.array([self.op_costs[k] for k in (*OP_KINDS, FIXED)])
        return op_counts(adjacency, features) @ costs

    def fit(self, adjacency: np.ndarray, features: np.ndarray, y_ms: np.ndarray) -> LayerwisePredictor:
        y = np.asarray(y_ms, dtype=np.float64).reshape(-1)
        _check(adjacency, features, y)
        if not self.measured:
            costs = nnls(op_counts(adjacency, features), y)
            self.op_costs = dict(zip((*OP_KINDS, FIXED), (float(c) for c in costs), strict=True))
        s = self._sum(adjacency, features)
        denom = float(s @ s)
        self.factor = float(s @ y) / denom if denom > 0 else 1.0
        return self

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        if self.factor is None:
            raise ValueError("the layer-wise predictor is not fitted")
        return self.factor * self._sum(adjacency, features)
