"""Structural descriptors of a pruned cell, computed from the GCN encoding (no measurement, no accuracy).

Used by :class:`predictors.accuracy.StructuralAccuracyPredictor`. Every input -> output path of the
pruned cell is enumerated (NB201: at most 4 paths before skip bridging, a handful after) and summarised
by its operations. The descriptors that matter most for NB201 accuracy are the paths that carry *no*
convolution (pure skip or pooling only): they bypass every learnable op of the cell.

Encoding (``latbench.graph.encode``): ``A[i, j] = 1`` when node j feeds node i, node 0 the input, node
``N - 2`` the output, node ``N - 1`` the global node; feature columns 0 conv1x1, 1 conv3x3, 2 avgpool.
"""

from __future__ import annotations

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    # op counts of the pruned cell (as predictors.baselines.op_counts)
    "conv1x1",
    "conv3x3",
    "avgpool",
    "additions",
    # input -> output paths
    "paths",
    "conv3x3_max",
    "conv3x3_min",
    "conv_max",
    "conv_min",
    "ops_max",
    "ops_min",
    "has_empty_path",  # a path with no op at all (a skip straight through)
    "pool_max",
    "conv_minus_pool_max",
    "conv3x3_total",
    "share_paths_with_pool",
    "paths_with_conv",
    "paths_with_conv3x3",
    "conv1x1_max",
    "conv_mean",
    "pool_min",
    "pool_only_paths",
    "conv3x3_mean",
    "paths_without_conv",
)

_CONV1, _CONV3, _POOL = 0, 1, 2


def _cell_features(adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Descriptors of one encoded cell (see FEATURE_NAMES); zeros for an invalid (disconnected) cell."""
    body = adjacency.shape[0] - 1  # without the global node
    out_node = body - 1
    live = features[:body].any(axis=1)
    op = np.where(features[:body, :3].any(axis=1), features[:body, :3].argmax(axis=1), -1)
    indegree = adjacency[:body, :body].sum(axis=1) - live  # minus the self-loop
    counts = [
        float(features[:body, _CONV1].sum()),
        float(features[:body, _CONV3].sum()),
        float(features[:body, _POOL].sum()),
        float(np.clip(indegree[1:] - 1, 0, None).sum()),
    ]
    # Paths as op sequences, by dynamic programming in node order (the encoding is topologically sorted).
    paths: list[list[tuple[int, ...]]] = [[] for _ in range(body)]
    paths[0] = [()]
    for j in range(1, body):
        step = (int(op[j]),) if op[j] >= 0 else ()
        for i in range(j):
            if adjacency[j, i] and i != j:
                paths[j] += [p + step for p in paths[i]]
    if not paths[out_node]:
        return np.zeros(len(FEATURE_NAMES))
    seqs = paths[out_node]
    c1 = np.array([p.count(_CONV1) for p in seqs], dtype=np.float64)
    c3 = np.array([p.count(_CONV3) for p in seqs], dtype=np.float64)
    pool = np.array([p.count(_POOL) for p in seqs], dtype=np.float64)
    length = np.array([len(p) for p in seqs], dtype=np.float64)
    conv = c1 + c3
    return np.array(
        [
            *counts,
            len(seqs),
            c3.max(),
            c3.min(),
            conv.max(),
            conv.min(),
            length.max(),
            length.min(),
            float((length == 0).any()),
            pool.max(),
            (conv - pool).max(),
            c3.sum(),
            (pool > 0).mean(),
            (conv > 0).sum(),
            (c3 > 0).sum(),
            c1.max(),
            conv.mean(),
            pool.min(),
            ((pool > 0) & (conv == 0)).sum(),
            c3.mean(),
            (conv == 0).sum(),
        ]
    )


def structural_features(adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(B, len(FEATURE_NAMES)) descriptors of encoded cells ((B, N, N) adjacency, (B, N, F) features)."""
    adjacency = np.asarray(adjacency, dtype=np.float32)
    features = np.asarray(features, dtype=np.float32)
    if adjacency.ndim != 3 or features.ndim != 3 or adjacency.shape[:2] != features.shape[:2]:
        raise ValueError(f"need (B, N, N) adjacency and (B, N, F) features, got {adjacency.shape}, {features.shape}")
    body = adjacency.shape[1] - 1  # without the global node
    if np.triu(adjacency[:, :body, :body], k=1).any():  # an edge j -> i with j > i
        raise ValueError(
            "the cells' nodes are not in topological order (input first, output last before the global node), "
            "as latbench.graph.encode gives them; the canonical order of predictors.gcn.unique_graphs is not"
        )
    b = adjacency.shape[0]
    # Each distinct encoding once (NB201: 15,625 cells, ~8.7k distinct encodings).
    rows = np.ascontiguousarray(np.concatenate([adjacency.reshape(b, -1), features.reshape(b, -1)], axis=1))
    keys = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    table = np.stack([_cell_features(adjacency[i], features[i]) for i in first]) if b else np.zeros((0, 24))
    return table[inverse.ravel()]
