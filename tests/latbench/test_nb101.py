"""latbench.nb101: NB101 cells (parsing, pruning, encoding, keys) and the shipped 500-cell subset."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from latbench.data import DataError
from latbench.nb101 import (
    CONV1X1,
    CONV3X3,
    FEATURES,
    MAXPOOL3X3,
    NB101Cell,
    NB101Error,
    load_nb101_subset,
)

IN, OUT = "input", "output"


def make(edges: list[tuple[int, int]], ops: list[str]) -> NB101Cell:
    n = len(ops)
    matrix = np.zeros((n, n), dtype=int)
    for src, dst in edges:
        matrix[src, dst] = 1
    return NB101Cell.from_arrays(matrix, ops)


# -- parsing and validation --------------------------------------------------------------------------
def test_from_strings_parses_the_subset_form() -> None:
    cell = NB101Cell.from_strings(
        "0111101000001100000010000110000001100000000000000",
        "input;maxpool3x3;maxpool3x3;conv3x3-bn-relu;conv3x3-bn-relu;conv3x3-bn-relu;output",
    )
    assert cell.num_vertices == 7
    assert cell.ops[1] == MAXPOOL3X3 and cell.ops[5] == CONV3X3
    assert cell.matrix[0] == (0, 1, 1, 1, 1, 0, 1)
    assert cell.edges == frozenset(
        {(0, 1), (0, 2), (0, 3), (0, 4), (0, 6), (1, 5), (1, 6), (2, 6), (3, 4), (3, 5), (4, 5), (4, 6)}
    )
    assert cell.adjacency_str == "0111101000001100000010000110000001100000000000000"
    assert cell.adjacency.shape == (7, 7)
    assert cell == make(sorted(cell.edges), list(cell.ops))


@pytest.mark.parametrize(
    ("matrix", "ops", "hint"),
    [
        ([[0, 1], [0, 0], [0, 0]], [IN, OUT], "adjacency must be square: row 0 has 2 entries, expected 3"),
        ([[0, 2], [0, 0]], [IN, OUT], "must be 0 or 1, got 2 at (0, 1)"),
        ([[0, 0.5], [0, 0]], [IN, OUT], "must be 0 or 1, got 0.5"),
        ([[0, 1, 0], [0, 0, 1], [1, 0, 0]], [IN, CONV1X1, OUT], "strictly upper triangular"),
        ([[1, 1], [0, 0]], [IN, OUT], "got an edge at (0, 0)"),
        ([[0, 1], [0, 0]], [IN, CONV1X1, OUT], "2 vertices need 2 ops, got 3"),
        ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [CONV1X1, IN, OUT], "the first op must be 'input'"),
        ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [IN, OUT, CONV1X1], "the last 'output'"),
        ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [IN, "conv5x5-bn-relu", OUT], "unknown op 'conv5x5-bn-relu' at vertex 1"),
        ([[0]], [IN], "2..7 vertices"),
        ([[0] * 8] * 8, [IN, *[CONV1X1] * 6, OUT], "2..7 vertices, got a 8-row matrix"),
    ],
)
def test_bad_cells_are_rejected_clearly(matrix: list[list[float]], ops: list[str], hint: str) -> None:
    with pytest.raises(NB101Error) as info:
        NB101Cell.from_arrays(np.array(matrix), ops)
    assert hint in str(info.value)


def test_bad_strings() -> None:
    with pytest.raises(NB101Error, match="n\\*n characters 0/1"):
        NB101Cell.from_strings("01100", "input;output")
    with pytest.raises(NB101Error, match="n\\*n characters 0/1"):
        NB101Cell.from_strings("0x00", "input;output")
    with pytest.raises(NB101Error, match="must be a 2-d matrix"):
        NB101Cell.from_arrays(np.zeros(4), [IN, OUT])


# -- pruning -----------------------------------------------------------------------------------------
def test_pruning_keeps_every_node_on_an_input_output_path() -> None:
    # in -> conv3 -> maxpool -> out, and in -> conv1 -> out: nothing is removed or bridged.
    cell = make([(0, 1), (1, 2), (2, 4), (0, 3), (3, 4)], [IN, CONV3X3, MAXPOOL3X3, CONV1X1, OUT])
    g = cell.graph
    assert g.labels == ("input", "conv3x3", "maxpool3x3", "conv1x1", None, None, "output")
    assert g.edges == frozenset({(0, 1), (1, 2), (2, 6), (0, 3), (3, 6)})
    assert cell.valid and cell.in_space
    assert cell.pruned() == cell


def test_pruning_removes_dead_ends_and_unreachable_vertices() -> None:
    # vertex 2 is a dead end (feeds nothing), vertex 3 is never reached from the input.
    cell = make([(0, 1), (1, 2), (1, 4), (3, 4)], [IN, CONV3X3, MAXPOOL3X3, CONV1X1, OUT])
    g = cell.graph
    assert g.labels == ("input", "conv3x3", None, None, None, None, "output")
    assert g.edges == frozenset({(0, 1), (1, 6)})
    pruned = cell.pruned()
    assert pruned.ops == (IN, CONV3X3, OUT)
    assert pruned.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert pruned.canonical_key == cell.canonical_key


def test_disconnected_cell_is_invalid() -> None:
    cell = make([(0, 1), (2, 3)], [IN, CONV3X3, CONV1X1, OUT])
    assert not cell.valid and not cell.in_space
    assert cell.graph.live == (0, 6)
    with pytest.raises(NB101Error, match="cannot be reached"):
        cell.pruned()


def test_too_many_edges_after_pruning_is_outside_the_space() -> None:
    # a full 6-vertex DAG: 15 edges, all on input->output paths.
    n = 6
    full = make([(i, j) for i in range(n) for j in range(i + 1, n)], [IN, *[CONV3X3] * 4, OUT])
    assert full.valid and len(full.graph.edges) == 15
    assert not full.in_space


def test_smaller_cells_are_padded_before_the_output() -> None:
    small = make([(0, 1), (1, 2)], [IN, CONV1X1, OUT])
    assert small.graph.num_slots == 7
    assert small.graph.labels == ("input", "conv1x1", None, None, None, None, "output")
    assert small.graph.edges == frozenset({(0, 1), (1, 6)})
    # the same cell written with 7 vertices, the spare ones dead: same graph, same key
    padded = make([(0, 1), (1, 6), (2, 3), (0, 4)], [IN, CONV1X1, CONV3X3, CONV3X3, MAXPOOL3X3, CONV1X1, OUT])
    assert padded.graph == small.graph
    assert padded.canonical_key == small.canonical_key


# -- encoding ----------------------------------------------------------------------------------------
def test_encoding_of_a_hand_checked_cell() -> None:
    cell = make([(0, 1), (1, 2), (2, 4), (0, 3), (3, 4)], [IN, CONV3X3, MAXPOOL3X3, CONV1X1, OUT])
    adjacency, features = cell.encode()
    assert adjacency.shape == (8, 8) and features.shape == (8, 6)
    assert adjacency.dtype == np.float32 and features.dtype == np.float32
    expected = np.zeros((8, 8), dtype=np.float32)
    for node in (0, 1, 2, 3, 6, 7):  # live slots and the global node
        expected[node, node] = 1
    for src, dst in ((0, 1), (1, 2), (2, 6), (0, 3), (3, 6)):
        expected[dst, src] = 1  # A[i, j] = 1 when j feeds i
    expected[7, [0, 1, 2, 3, 6]] = 1
    np.testing.assert_array_equal(adjacency, expected)
    assert FEATURES == ("conv1x1", "conv3x3", "maxpool3x3", "input", "output", "global")
    hot = {n: FEATURES[int(np.argmax(row))] for n, row in enumerate(features) if row.any()}
    assert hot == {0: "input", 1: "conv3x3", 2: "maxpool3x3", 3: "conv1x1", 6: "output", 7: "global"}
    assert features[4:6].sum() == 0  # padding slots are all zero


# -- canonical keys ----------------------------------------------------------------------------------
def test_isomorphic_cells_share_a_key() -> None:
    # two parallel branches conv3 and maxpool, numbered either way round
    a = make([(0, 1), (0, 2), (1, 3), (2, 3)], [IN, CONV3X3, MAXPOOL3X3, OUT])
    b = make([(0, 1), (0, 2), (1, 3), (2, 3)], [IN, MAXPOOL3X3, CONV3X3, OUT])
    assert a != b
    assert a.canonical_key == b.canonical_key
    c = make([(0, 1), (0, 2), (1, 3), (2, 3)], [IN, CONV1X1, MAXPOOL3X3, OUT])
    assert c.canonical_key != a.canonical_key
    chain = make([(0, 1), (1, 2), (2, 3)], [IN, CONV3X3, MAXPOOL3X3, OUT])
    assert chain.canonical_key != a.canonical_key


# -- the shipped subset ------------------------------------------------------------------------------
def test_all_500_load_and_are_in_the_space() -> None:
    records = load_nb101_subset()
    assert len(records) == 500
    assert all(r.cell.in_space for r in records)
    assert all(r.cell.num_vertices == 7 for r in records)
    assert all(0 < r.val_accuracy <= 100 and r.flops_M > 0 and r.params_M > 0 for r in records)
    first = records[0]
    assert first.val_accuracy == 92.578125
    assert (first.flops_M, first.params_M) == (624.55808, 4.095778)
    # the raw matrices hold more than NB101's 9 edges; pruning brings every one within it
    assert max(len(r.cell.edges) for r in records) > 9
    assert max(len(r.cell.graph.edges) for r in records) <= 9
    for r in records[:50]:
        adjacency, features = r.cell.encode()
        assert adjacency.shape == (8, 8) and features.shape == (8, 6)
        assert features.sum() == len(r.cell.graph.live) + 1


def test_subset_cost_agrees_with_the_pruned_graph() -> None:
    """FLOPs/params are functions of the pruned graph, up to NB101's order-dependent channel split."""
    by_key: dict[str, list[float]] = defaultdict(list)
    bare: set[tuple[float, float]] = set()
    for r in load_nb101_subset():
        by_key[r.cell.canonical_key].append(r.flops_M)
        if r.cell.graph.live == (0, 6):
            bare.add((r.flops_M, r.params_M))
    assert len(by_key) == 292
    assert bare == {(140.416, 0.88257)}  # input -> output only: 55 cells, one cost
    for flops in by_key.values():
        assert max(flops) / min(flops) < 1.02


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


HEADER = "adjacency_7x7_rowmajor,ops,val_accuracy,flops_M,params_M"
GOOD = "0100000" + "0010000" + "0000001" + "0" * 28  # in -> v1 -> v2 -> out; v3..v5 unused
GOOD_OPS = "input;conv1x1-bn-relu;conv3x3-bn-relu;maxpool3x3;maxpool3x3;maxpool3x3;output"


@pytest.mark.parametrize(
    ("row", "hint"),
    [
        (f"01010,{GOOD_OPS},90,100,1", "line 3: adjacency must be n*n characters"),
        (f"{GOOD},input;conv1x1-bn-relu;output,90,100,1", "line 3: 7 vertices need 7 ops, got 3"),
        (f"{GOOD},{GOOD_OPS.replace('maxpool3x3', 'pool', 1)},90,100,1", "line 3: unknown op 'pool' at vertex 3"),
        (f"{GOOD},{GOOD_OPS},ninety,100,1", "line 3: column val_accuracy holds 'ninety'"),
        (f"{GOOD},{GOOD_OPS},90,-100,1", "line 3: column flops_M value '-100' must be positive"),
        (f"{'0' * 49},{GOOD_OPS},90,100,1", "line 3: cell is not in the NB101 space"),
    ],
)
def test_bad_subset_rows_name_the_line(tmp_path: Path, row: str, hint: str) -> None:
    path = _write(tmp_path / "nb101.csv", [HEADER, f"{GOOD},{GOOD_OPS},90,100,1", row])
    with pytest.raises(DataError) as info:
        load_nb101_subset(path)
    assert str(info.value).startswith(str(path))
    assert hint in str(info.value)


def test_subset_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_nb101_subset(tmp_path / "none.csv")
    path = _write(tmp_path / "cols.csv", ["adjacency_7x7_rowmajor,ops,val_accuracy"])
    with pytest.raises(DataError, match=re.escape("line 1: missing column(s) flops_M, params_M")):
        load_nb101_subset(path)
    with pytest.raises(DataError, match="no rows"):
        load_nb101_subset(_write(tmp_path / "empty.csv", [HEADER]))


def test_subset_custom_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "ok.csv", [HEADER, f"{GOOD},{GOOD_OPS},91.5,120.5,1.25"])
    (record,) = load_nb101_subset(path)
    assert record.cell.pruned().ops == (IN, CONV1X1, CONV3X3, OUT)
    assert (record.val_accuracy, record.flops_M, record.params_M) == (91.5, 120.5, 1.25)
