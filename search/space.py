"""The NB201 search space as arrays, shared by every search algorithm.

Searches work on NB201 indices (official order). What they need about the space is cheap to compute
once and identical for every run, so it is cached here: the op tuple of every index, which cells are
valid (an input->output path survives pruning), the GCN encodings, and a lookup from op tuples back to
indices for mutation and for controllers that emit ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from latbench import nb201
from latbench.graph import EncodedBatch, encode_nb201_batch

NUM_OPS = len(nb201.OPS)
NUM_EDGES = nb201.NUM_EDGES
_PLACE = NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1)  # base-5 digit weights, first edge most significant


@dataclass(frozen=True)
class Space:
    """Arrays over all 15,625 NB201 indices (row i = index i). Read-only; shared between runs."""

    ops: np.ndarray  # (N, 6) int64, op codes per edge in arch-string order
    valid: np.ndarray  # (N,) bool
    index_of_code: np.ndarray  # (5**6,) int64: base-5 op code number -> NB201 index
    encodings: EncodedBatch  # GCN inputs, row i = index i

    @property
    def size(self) -> int:
        return int(self.ops.shape[0])

    @property
    def valid_indices(self) -> np.ndarray:
        return np.flatnonzero(self.valid)

    def index_of_ops(self, ops: np.ndarray) -> np.ndarray:
        """NB201 index of each row of op codes ((B, 6) or (6,))."""
        ops = np.asarray(ops, dtype=np.int64)
        return self.index_of_code[ops @ _PLACE]

    def arch_str(self, index: int) -> str:
        return nb201.Arch(tuple(int(op) for op in self.ops[index])).arch_str

    def unique_encodings(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, inverse): one index per distinct GCN encoding, and each index's row in ``first``.

        Identical encodings get identical predictions, so networks score only the distinct ones.
        """
        return _unique_encodings(self.encodings)

    def check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Indices as an int64 array; raise ``ArchError`` naming the first one outside the space."""
        arr = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = (arr < 0) | (arr >= self.size)
        if bad.any():
            raise nb201.ArchError(f"NB201 index must be in 0..{self.size - 1}, got {int(arr[np.argmax(bad)])}")
        return arr


@cache
def nb201_space() -> Space:
    """The NB201 space (built once per process, in well under a second)."""
    codes = nb201.op_codes_by_index()
    ops = np.array([[int(c) for c in code] for code in codes], dtype=np.int64)
    encodings = encode_nb201_batch(ops)
    index_of_code = np.full(NUM_OPS**NUM_EDGES, -1, dtype=np.int64)
    index_of_code[ops @ _PLACE] = np.arange(len(codes))
    for array in (ops, index_of_code, encodings.adjacency, encodings.features, encodings.valid):
        array.setflags(write=False)
    return Space(ops=ops, valid=encodings.valid, index_of_code=index_of_code, encodings=encodings)


_UNIQUE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _unique_encodings(enc: EncodedBatch) -> tuple[np.ndarray, np.ndarray]:
    key = id(enc)
    if key not in _UNIQUE:
        b = enc.adjacency.shape[0]
        rows = np.ascontiguousarray(np.concatenate([enc.adjacency.reshape(b, -1), enc.features.reshape(b, -1)], axis=1))
        keys = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        _UNIQUE[key] = (first, inverse.ravel())
    return _UNIQUE[key]


def mutate(space: Space, index: int, rng: np.random.Generator) -> int:
    """One-edge mutation: pick one of the 6 edges uniformly and give it a different op, uniformly."""
    ops = space.ops[index].copy()
    edge = int(rng.integers(NUM_EDGES))
    ops[edge] = (ops[edge] + 1 + int(rng.integers(NUM_OPS - 1))) % NUM_OPS
    return int(space.index_of_ops(ops))


def neighbours(space: Space, index: int) -> np.ndarray:
    """All 24 indices one edge mutation away from ``index``."""
    base = space.ops[index]
    rows = []
    for edge in range(NUM_EDGES):
        for op in range(NUM_OPS):
            if op != base[edge]:
                row = base.copy()
                row[edge] = op
                rows.append(row)
    return space.index_of_ops(np.array(rows))
