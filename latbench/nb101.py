"""NAS-Bench-101 cells: validation, pruning, the GCN encoding, and the shipped 500-cell subset.

An NB101 cell is a DAG of at most 7 vertices given by an upper-triangular adjacency matrix
(``matrix[i][j] = 1`` when vertex i feeds vertex j) and one op per vertex: the first is ``input``, the
last ``output``, the others ``conv1x1-bn-relu``, ``conv3x3-bn-relu`` or ``maxpool3x3``. Unlike NB201
there are no "none"/"skip" ops; NB101 (like its own ``ModelSpec``) only removes the vertices that are
not on any input→output path, and that is all ``latbench.graph.prune`` does here. The NB101 space also
caps a cell at 9 edges *after* that pruning; raw matrices (such as the shipped subset's) may hold more.

For the GCN, a cell always takes 7 slots (a smaller cell is padded before its output with empty slots,
which pruning cuts) plus the global node: an 8x8 adjacency and 8x6 one-hot features over
``FEATURES``, built by :func:`latbench.graph.encode` with the same conventions as NB201.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from latbench import graph
from latbench.data import NB101_FILE, PathLike, read_csv
from latbench.graph import GLOBAL, INPUT, OUTPUT, CellGraph

CONV1X1, CONV3X3, MAXPOOL3X3 = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
OPS: tuple[str, ...] = (INPUT, CONV1X1, CONV3X3, MAXPOOL3X3, OUTPUT)
INNER_OPS = (CONV1X1, CONV3X3, MAXPOOL3X3)

# Graph labels: short names that are neither cut ("none") nor bridged ("skip_connect") by pruning.
LABELS: dict[str, str] = {
    INPUT: INPUT,
    CONV1X1: "conv1x1",
    CONV3X3: "conv3x3",
    MAXPOOL3X3: "maxpool3x3",
    OUTPUT: OUTPUT,
}
PAD_LABEL = "none"  # empty slots of a padded cell: pruning cuts them
FEATURES: tuple[str, ...] = ("conv1x1", "conv3x3", "maxpool3x3", INPUT, OUTPUT, GLOBAL)

MAX_VERTICES = 7
MAX_EDGES = 9  # after pruning, as the NB101 space
NB101_SLOTS = MAX_VERTICES
NB101_NODES = NB101_SLOTS + 1  # plus the global node
SUBSET_COLUMNS = ("adjacency_7x7_rowmajor", "ops", "val_accuracy", "flops_M", "params_M")


class NB101Error(ValueError):
    """A matrix/ops pair that is not an NB101 cell."""


@dataclass(frozen=True)
class NB101Cell:
    """One NB101 cell: ``matrix`` (n x n of 0/1, upper triangular) and ``ops`` (n names), n in 2..7."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.matrix)
        if not 2 <= n <= MAX_VERTICES:
            raise NB101Error(f"an NB101 cell has 2..{MAX_VERTICES} vertices, got a {n}-row matrix")
        for i, row in enumerate(self.matrix):
            if len(row) != n:
                raise NB101Error(f"adjacency must be square: row {i} has {len(row)} entries, expected {n}")
            for j, v in enumerate(row):
                if v not in (0, 1):
                    raise NB101Error(f"adjacency entries must be 0 or 1, got {v!r} at ({i}, {j})")
                if v and j <= i:
                    raise NB101Error(
                        f"adjacency must be strictly upper triangular (vertex i feeds j > i), got an edge at ({i}, {j})"
                    )
        if len(self.ops) != n:
            raise NB101Error(f"{n} vertices need {n} ops, got {len(self.ops)}")
        if self.ops[0] != INPUT or self.ops[-1] != OUTPUT:
            raise NB101Error(f"the first op must be {INPUT!r} and the last {OUTPUT!r}, got {list(self.ops)}")
        for k, op in enumerate(self.ops[1:-1], start=1):
            if op not in INNER_OPS:
                raise NB101Error(f"unknown op {op!r} at vertex {k}; inner ops are: {', '.join(INNER_OPS)}")

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, matrix: np.ndarray | Sequence[Sequence[int]], ops: Sequence[str]) -> NB101Cell:
        array = np.asarray(matrix)
        if array.ndim != 2:
            raise NB101Error(f"adjacency must be a 2-d matrix, got shape {array.shape}")
        # 0/1 of any numeric type become ints; anything else is kept for __post_init__ to reject.
        rows = tuple(tuple(int(v) if v in (0, 1) else v for v in row) for row in array.tolist())
        return cls(matrix=rows, ops=tuple(ops))

    @classmethod
    def from_strings(cls, adjacency: str, ops: str) -> NB101Cell:
        """Parse the subset's text form: n*n characters ``0``/``1`` row-major, ops separated by ``;``."""
        text = adjacency.strip()
        n = math.isqrt(len(text))
        if n * n != len(text) or not set(text) <= {"0", "1"}:
            raise NB101Error(f"adjacency must be n*n characters 0/1 (row-major), got {adjacency!r}")
        rows = tuple(tuple(int(c) for c in text[i * n : (i + 1) * n]) for i in range(n))
        return cls(matrix=rows, ops=tuple(op.strip() for op in ops.split(";")))

    # -- views -------------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def edges(self) -> frozenset[tuple[int, int]]:
        return frozenset((i, j) for i, row in enumerate(self.matrix) for j, v in enumerate(row) if v)

    @property
    def adjacency(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.int8)

    @property
    def adjacency_str(self) -> str:
        return "".join(str(v) for row in self.matrix for v in row)

    @cached_property
    def graph(self) -> CellGraph:
        """The pruned cell over 7 slots (vertex k in slot k, the output in slot 6)."""
        n = self.num_vertices
        slot = [*range(n - 1), NB101_SLOTS - 1]  # pad between the last op and the output
        labels = [PAD_LABEL] * NB101_SLOTS
        for k, op in enumerate(self.ops):
            labels[slot[k]] = LABELS[op]
        return graph.prune(labels, {(slot[i], slot[j]) for i, j in self.edges})

    @property
    def valid(self) -> bool:
        """True when the output can be reached from the input."""
        return self.graph.valid

    @property
    def in_space(self) -> bool:
        """True when the cell is in the NB101 space: valid and at most 9 edges once pruned."""
        return self.valid and len(self.graph.edges) <= MAX_EDGES

    @property
    def canonical_key(self) -> str:
        return self.graph.canonical_key

    def pruned(self) -> NB101Cell:
        """The same cell with the vertices off every input→output path deleted (as NB101's ModelSpec)."""
        if not self.valid:
            raise NB101Error("the output cannot be reached from the input; nothing is left after pruning")
        live = self.graph.live
        ops = [self.ops[-1] if k == NB101_SLOTS - 1 else self.ops[k] for k in live]
        position = {k: p for p, k in enumerate(live)}
        matrix = [[0] * len(live) for _ in live]
        for src, dst in self.graph.edges:
            matrix[position[src]][position[dst]] = 1
        return NB101Cell(matrix=tuple(tuple(r) for r in matrix), ops=tuple(ops))

    def encode(self) -> tuple[np.ndarray, np.ndarray]:
        """GCN input: (8x8 adjacency, 8x6 features), float32; see ``latbench.graph.encode``."""
        return graph.encode(self.graph, features=FEATURES)


@dataclass(frozen=True)
class NB101Record:
    """One row of the shipped subset (CIFAR-10, 108 epochs, one random training repeat)."""

    cell: NB101Cell
    val_accuracy: float  # percent
    flops_M: float  # millions, as NASLib computes them
    params_M: float


def load_nb101_subset(path: PathLike | None = None) -> list[NB101Record]:
    """The 500 NB101 cells of the shipped NASLib subset (or another CSV with the same columns)."""
    table = read_csv(path, NB101_FILE, required=SUBSET_COLUMNS, allowed=SUBSET_COLUMNS)
    if not table.rows:
        table.fail(None, "no rows")
    accuracy = table.floats("val_accuracy", missing_ok=False, maximum=100.0)
    flops = table.floats("flops_M", missing_ok=False, positive=True)
    params = table.floats("params_M", missing_ok=False, positive=True)
    records: list[NB101Record] = []
    cells = zip(table.text("adjacency_7x7_rowmajor"), table.text("ops"), strict=True)
    for row, (adjacency, ops) in enumerate(cells):
        try:
            cell = NB101Cell.from_strings(adjacency, ops)
        except NB101Error as exc:
            table.fail(row, str(exc))
        if not cell.in_space:
            table.fail(row, "cell is not in the NB101 space (disconnected, or over 9 edges once pruned)")
        records.append(NB101Record(cell, float(accuracy[row]), float(flops[row]), float(params[row])))
    return records
