"""Cell graphs: pruning (paper S1.1), the GCN encoding, and a canonical key for equivalent cells.

A cell is a node-labelled DAG whose nodes are numbered in topological order: node 0 is the input,
the last node the output, and the ones between are operations. NB201 puts its operations on edges,
so its cell is first turned into this form: one op node per edge (slot 1..6 in arch-string edge
order); an op node on edge (i→j) takes the sum of what reaches NB201 node i and feeds every op node
leaving node j (or the output when j = 3).

Pruning, as the paper: "none" nodes are cut; "skip_connect" nodes are bridged (every predecessor is
wired to every successor) and cut; then every node that is not on an input→output path is removed.
A cell whose output can no longer be reached from its input is invalid.

GCN encoding (DESIGN.md): slots keep their position, so NB201 gives 8 slots + 1 global node = 9x9.
``adjacency[i, j] = 1`` when node j feeds node i (so ``A @ H`` gathers each node's predecessors),
plus self-loops, plus a global node (last row) that gathers from every live node. Cut slots have
all-zero rows and columns in the adjacency and all-zero feature rows. Features are one-hot over
``FEATURES``.
"""

from __future__ import annotations

import hashlib
import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from latbench import nb201
from latbench.nb201 import EDGES, Arch

INPUT, OUTPUT, GLOBAL = "input", "output", "global"
CUT_LABELS = frozenset({"none"})
BRIDGE_LABELS = frozenset({"skip_connect"})

# One-hot feature columns of the NB201 encoding.
FEATURES: tuple[str, ...] = ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", INPUT, OUTPUT, GLOBAL)
NB201_SLOTS = 8  # input, 6 edge ops, output
NB201_NODES = NB201_SLOTS + 1  # plus the global node


@dataclass(frozen=True)
class CellGraph:
    """A labelled DAG over fixed slots. ``labels[k] is None`` marks a slot that pruning cut."""

    labels: tuple[str | None, ...]
    edges: frozenset[tuple[int, int]]

    @property
    def num_slots(self) -> int:
        return len(self.labels)

    @property
    def output(self) -> int:
        return self.num_slots - 1

    @cached_property
    def live(self) -> tuple[int, ...]:
        return tuple(k for k, label in enumerate(self.labels) if label is not None)

    def preds(self, node: int) -> list[int]:
        return sorted(src for src, dst in self.edges if dst == node)

    def succs(self, node: int) -> list[int]:
        return sorted(dst for src, dst in self.edges if src == node)

    @property
    def valid(self) -> bool:
        """True when the output is reachable from the input (after pruning: when any edge is left)."""
        return _reachable_from(0, self.edges, self.num_slots)[self.output]

    @property
    def op_nodes(self) -> list[int]:
        return [k for k in self.live if k not in (0, self.output)]

    # -- canonical form --------------------------------------------------------------------------
    @cached_property
    def canonical_form(self) -> str:
        """A string equal for two cells exactly when their pruned graphs are isomorphic (same labels)."""
        return _canonical_form(self)

    @cached_property
    def canonical_key(self) -> str:
        """Short stable hash of :attr:`canonical_form` (what the store and releases key on)."""
        return hashlib.sha1(self.canonical_form.encode()).hexdigest()[:16]


def _reachable_from(start: int, edges: frozenset[tuple[int, int]], n: int) -> list[bool]:
    seen = [False] * n
    seen[start] = True
    for src, dst in sorted(edges):  # slots are topologically ordered, so one pass suffices
        if seen[src]:
            seen[dst] = True
    return seen


def _reaching(end: int, edges: frozenset[tuple[int, int]], n: int) -> list[bool]:
    seen = [False] * n
    seen[end] = True
    for src, dst in sorted(edges, reverse=True):
        if seen[dst]:
            seen[src] = True
    return seen


def prune(labels: Sequence[str], edges: set[tuple[int, int]] | frozenset[tuple[int, int]]) -> CellGraph:
    """Prune a topologically numbered cell (node 0 input, last node output) as the paper's S1.1."""
    n = len(labels)
    for src, dst in edges:
        if not 0 <= src < dst < n:
            raise ValueError(f"edge {(src, dst)} is not forward in a {n}-node cell")
    alive = [True] * n
    current = {(s, d) for s, d in edges}
    for node in range(1, n - 1):
        if labels[node] in CUT_LABELS:
            alive[node] = False
            current = {(s, d) for s, d in current if node not in (s, d)}
    for node in range(1, n - 1):  # topological order, so chains of skips bridge correctly
        if alive[node] and labels[node] in BRIDGE_LABELS:
            preds = [s for s, d in current if d == node]
            succs = [d for s, d in current if s == node]
            current = {(s, d) for s, d in current if node not in (s, d)}
            current |= {(p, q) for p in preds for q in succs}
            alive[node] = False
    edge_set = frozenset(current)
    from_input = _reachable_from(0, edge_set, n)
    to_output = _reaching(n - 1, edge_set, n)
    on_path = [alive[k] and from_input[k] and to_output[k] for k in range(n)]
    on_path[0] = on_path[n - 1] = True  # input and output always stay, even when disconnected
    kept = frozenset((s, d) for s, d in edge_set if on_path[s] and on_path[d])
    return CellGraph(
        labels=tuple(labels[k] if on_path[k] else None for k in range(n)),
        edges=kept,
    )


# -- NB201 -----------------------------------------------------------------------------------------
def _nb201_structure() -> frozenset[tuple[int, int]]:
    """Edges of the unpruned NB201 op-node graph over slots 0 (input), 1..6 (edges), 7 (output)."""
    edges: set[tuple[int, int]] = set()
    for slot, (src, dst) in enumerate(EDGES, start=1):
        if src == 0:
            edges.add((0, slot))
        else:
            edges |= {(pred, slot) for pred, (_, d) in enumerate(EDGES, start=1) if d == src}
        if dst == 3:
            edges.add((slot, NB201_SLOTS - 1))
    return frozenset(edges)


NB201_STRUCTURE = _nb201_structure()


def nb201_labels(arch: Arch) -> tuple[str, ...]:
    return (INPUT, *(nb201.OPS[op] for op in arch.ops), OUTPUT)


def nb201_unpruned(arch: Arch) -> CellGraph:
    """The full cell (every edge op built, as NB201 trains it); used for NATS-Bench param counts."""
    return CellGraph(labels=nb201_labels(arch), edges=NB201_STRUCTURE)


def nb201_cell(arch: Arch) -> CellGraph:
    """The pruned cell of an NB201 architecture."""
    return prune(nb201_labels(arch), NB201_STRUCTURE)


# -- encoding --------------------------------------------------------------------------------------
def encode(cell: CellGraph, features: Sequence[str] = FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """GCN input of one cell: ``(adjacency (n+1)x(n+1), features (n+1)xF)`` as float32."""
    n = cell.num_slots
    adjacency = np.zeros((n + 1, n + 1), dtype=np.float32)
    feats = np.zeros((n + 1, len(features)), dtype=np.float32)
    column = {name: k for k, name in enumerate(features)}
    for node in cell.live:
        adjacency[node, node] = 1.0
        adjacency[n, node] = 1.0
        label = cell.labels[node]
        assert label is not None
        feats[node, column[label]] = 1.0
    for src, dst in cell.edges:
        adjacency[dst, src] = 1.0
    adjacency[n, n] = 1.0
    feats[n, column[GLOBAL]] = 1.0
    return adjacency, feats


@dataclass(frozen=True)
class EncodedBatch:
    adjacency: np.ndarray  # (B, 9, 9) float32
    features: np.ndarray  # (B, 9, 6) float32
    valid: np.ndarray  # (B,) bool


def encode_nb201_batch(op_codes: np.ndarray | Sequence[Sequence[int]]) -> EncodedBatch:
    """Vectorised pruning + encoding of many NB201 cells (all 15,625 in a few milliseconds).

    Does the same as ``encode(nb201_cell(arch))`` for each row of ``op_codes`` (B x 6 ints);
    a test checks the two agree on every architecture.
    """
    ops = np.asarray(op_codes, dtype=np.int64).reshape(-1, nb201.NUM_EDGES)
    b, n = ops.shape[0], NB201_SLOTS
    node_ops = np.full((b, n), -1, dtype=np.int64)  # -1 input/output
    node_ops[:, 1:-1] = ops
    base = np.zeros((n, n), dtype=bool)
    for src, dst in NB201_STRUCTURE:
        base[src, dst] = True
    alive = node_ops != nb201.NONE
    m = base[None, :, :] & alive[:, :, None] & alive[:, None, :]  # m[b, src, dst]
    for k in range(1, n - 1):
        skip = alive[:, k] & (node_ops[:, k] == nb201.SKIP)
        bridged = m[:, :, k, None] & m[:, None, k, :]  # pred -> succ through k
        m |= bridged & skip[:, None, None]
        m[skip, k, :] = False
        m[skip, :, k] = False
        alive[:, k] &= ~skip
    from_input = np.zeros((b, n), dtype=bool)
    from_input[:, 0] = True
    for dst in range(1, n):
        from_input[:, dst] = (from_input[:, :dst] & m[:, :dst, dst]).any(axis=1)
    to_output = np.zeros((b, n), dtype=bool)
    to_output[:, n - 1] = True
    for src in range(n - 2, -1, -1):
        to_output[:, src] = (to_output[:, src + 1 :] & m[:, src, src + 1 :]).any(axis=1)
    keep = alive & from_input & to_output
    keep[:, 0] = keep[:, n - 1] = True
    m &= keep[:, :, None] & keep[:, None, :]

    adjacency = np.zeros((b, n + 1, n + 1), dtype=np.float32)
    adjacency[:, :n, :n] = np.swapaxes(m, 1, 2)
    idx = np.arange(n)
    adjacency[:, idx, idx] = keep
    adjacency[:, n, :n] = keep
    adjacency[:, n, n] = 1.0
    features = np.zeros((b, n + 1, len(FEATURES)), dtype=np.float32)
    for op, column in ((nb201.CONV1X1, 0), (nb201.CONV3X3, 1), (nb201.AVGPOOL, 2)):
        features[:, :, column][:, :n] = (node_ops == op) & keep
    features[:, 0, 3] = 1.0
    features[:, n - 1, 4] = 1.0
    features[:, n, 5] = 1.0
    valid = from_input[:, n - 1]
    return EncodedBatch(adjacency=adjacency, features=features, valid=valid)


def nb201_op_matrix() -> np.ndarray:
    """The six edge operations (op codes as ints) of every NB201 architecture, row i = index i."""
    return np.array([[int(c) for c in code] for code in nb201.op_codes_by_index()], dtype=np.int64)


def encode_all_nb201() -> EncodedBatch:
    """Encoding of every NB201 architecture, row i = index i."""
    return encode_nb201_batch(nb201_op_matrix())


def predict_all_nb201(predict: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``predict(adjacency, features)`` on every valid NB201 cell, as an array indexed by NB201 index
    (15,625); NaN for the cells with no input->output path."""
    enc = encode_all_nb201()
    out = np.full(enc.valid.shape[0], np.nan)
    out[enc.valid] = predict(enc.adjacency[enc.valid], enc.features[enc.valid])
    return out


# -- canonical form --------------------------------------------------------------------------------
def _canonical_form(cell: CellGraph) -> str:
    """Canonical labelling: sort nodes by an isomorphism invariant, break ties by brute force.

    The invariant of a node is the expression it computes from the input (``label(sorted inputs)``)
    together with the expression of how it reaches the output. Any isomorphism maps a node to one
    with the same invariant, so the minimum over orderings consistent with the sorted invariants is a
    canonical form. Tie groups are tiny in these cells (they are searched exhaustively).
    """
    if not cell.valid:
        return "invalid"
    live = list(cell.live)
    into: dict[int, str] = {}
    for node in live:  # slots are in topological order
        preds = cell.preds(node)
        inner = "+".join(sorted(into[p] for p in preds))
        into[node] = f"{cell.labels[node]}({inner})"
    outof: dict[int, str] = {}
    for node in reversed(live):
        succs = cell.succs(node)
        inner = ",".join(sorted(outof[s] for s in succs))
        outof[node] = f"{cell.labels[node]}[{inner}]"
    invariant = {node: (into[node], outof[node]) for node in live}
    groups = [list(g) for _, g in itertools.groupby(sorted(live, key=invariant.__getitem__), invariant.get)]
    best: str | None = None
    for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [node for group in choice for node in group]
        position = {node: k for k, node in enumerate(order)}
        edge_text = ",".join(f"{a}>{b}" for a, b in sorted((position[s], position[d]) for s, d in cell.edges))
        label_text = ",".join(str(cell.labels[node]) for node in order)
        text = f"{label_text};{edge_text}"
        if best is None or text < best:
            best = text
    assert best is not None
    return best


def group_medians(values: np.ndarray, groups: np.ndarray, n_groups: int | None = None) -> np.ndarray:
    """Median of ``values`` over each group, NaNs left out: LatBench's identical-graph groups.

    ``values``: (N,) or (N, D); ``groups``: (N,) labels in [0, n_groups) (e.g. ``np.unique(...,
    return_inverse=True)`` of canonical keys). Returns (n_groups,) or (n_groups, D), NaN where a group
    has no value (no member, or only NaNs in that column).
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if groups.ndim != 1 or values.shape[:1] != groups.shape:
        raise ValueError(f"values {values.shape} and groups {groups.shape} must have the same first dimension")
    if groups.size and groups.min() < 0:
        raise ValueError("group labels must be >= 0")
    if n_groups is None:
        n_groups = int(groups.max()) + 1 if groups.size else 0
    out = np.full((n_groups, *values.shape[1:]), np.nan)
    if not groups.size:
        return out
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1], True])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group with no value: stays NaN
        for start, stop in itertools.pairwise(bounds):
            members = order[start:stop]
            out[groups[members[0]]] = np.nanmedian(values[members], axis=0)
    return out
