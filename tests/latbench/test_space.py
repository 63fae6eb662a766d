"""The NB201 space core (latbench.nb201, latbench.graph) checked by hand and against the shipped CSVs.

The CSVs are read here directly with csv + gzip, independently of latbench.data.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from functools import cache
from importlib import resources

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from latbench import graph, nb201
from latbench.graph import encode, encode_all_nb201, nb201_cell, prune
from latbench.nb201 import Arch, ArchError, parse_arch

INDEX_0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
BEST_CIFAR100 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@cache
def shipped_rows(name: str) -> tuple[dict[str, str], ...]:
    path = resources.files("latbench") / "data" / name
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8", newline="") as f:
        return tuple(csv.DictReader(f))


@cache
def all_cells() -> tuple[graph.CellGraph, ...]:
    return tuple(nb201_cell(arch) for arch in nb201.all_archs())


def cell(arch_str: str) -> graph.CellGraph:
    return nb201_cell(Arch.from_str(arch_str))


# -- arch strings, op codes, indices ---------------------------------------------------------------
op_tuples = st.tuples(*[st.integers(0, 4)] * 6)


@given(op_tuples)
def test_arch_string_and_op_code_round_trip(ops: tuple[int, ...]) -> None:
    arch = Arch(ops)
    assert Arch.from_str(arch.arch_str) == arch
    assert Arch.from_op_code(arch.op_code) == arch
    assert Arch.from_index(arch.index) == arch
    assert parse_arch(arch.arch_str) == parse_arch(f"op:{arch.op_code}") == parse_arch(str(arch.index)) == arch


def test_known_indices() -> None:
    assert Arch.from_index(0).arch_str == INDEX_0
    assert Arch.from_index(0).op_code == "421211"
    assert Arch.from_str(BEST_CIFAR100).index == 9930
    assert parse_arch(9930) == parse_arch(" 9930 ") == Arch.from_str(BEST_CIFAR100)


def test_indices_are_a_permutation_of_all_op_codes() -> None:
    codes = nb201.op_codes_by_index()
    assert len(codes) == nb201.NUM_ARCHS == 15_625
    assert sorted(codes) == sorted("".join(map(str, t)) for t in nb201.op_code_product())
    assert [a.index for a in nb201.all_archs()] == list(range(nb201.NUM_ARCHS))


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "3 nodes"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must be 'op~0'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "must have 2 inputs"),
        ("|none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must look like |op~0|"),
        ("15625", "0..15624"),
        ("-1", "0..15624"),
        ("op:12345", "6 digits"),
        ("op:123455", "6 digits 0-4"),
        ("resnet", "is not an NB201 index"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, hint: str) -> None:
    with pytest.raises(ArchError) as info:
        parse_arch(text)
    assert hint in str(info.value)


def test_arch_rejects_bad_op_tuples() -> None:
    with pytest.raises(ArchError, match="6 edge ops"):
        Arch((1, 2, 3))
    with pytest.raises(ArchError, match="codes 0-4"):
        Arch((0, 0, 0, 0, 0, 5))


# -- the index table against both shipped CSVs -----------------------------------------------------
@pytest.mark.parametrize("name", ["nb201_accuracy_200ep.csv.gz", "latbench_latency.csv.gz"])
def test_every_index_agrees_with_the_shipped_csv(name: str) -> None:
    rows = shipped_rows(name)
    assert len(rows) == nb201.NUM_ARCHS
    for index, (row, arch) in enumerate(zip(rows, nb201.all_archs(), strict=True)):
        assert int(row["arch_index"]) == index
        assert row["op_code"] == arch.op_code, index
        assert row["arch_str"] == arch.arch_str, index
        assert Arch.from_str(row["arch_str"]).index == index


def test_invalid_cells_are_exactly_those_latbench_leaves_empty() -> None:
    empty = {
        i
        for i, row in enumerate(shipped_rows("latbench_latency.csv.gz"))
        if not row["desktop_cpu_core_i7_7820x_fp32_ms"]
    }
    invalid = {i for i, c in enumerate(all_cells()) if not c.valid}
    assert len(invalid) == 341
    assert invalid == empty
    assert set(np.flatnonzero(~encode_all_nb201().valid)) == invalid


# -- pruning by hand -------------------------------------------------------------------------------
def test_all_none_cell_is_invalid() -> None:
    c = cell("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert not c.valid
    assert c.live == (0, 7)
    assert c.edges == frozenset()
    assert c.canonical_form == "invalid"


def test_skip_chain_is_bridged_into_one_edge() -> None:
    # input -skip-> node1 -skip-> node2 -skip-> output: only input -> output is left.
    c = cell("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|")
    assert c.valid
    assert c.live == (0, 7)
    assert c.edges == frozenset({(0, 7)})


def test_skip_bridges_every_predecessor_to_every_successor() -> None:
    # node1 = conv3(x) + ... ; the skip on edge (1->3) wires conv3 (slot 1) straight to the output,
    # the skip on (1->2) wires it to the conv1x1 on edge (2->3) (slot 6).
    c = cell("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|nor_conv_1x1~2|")
    assert c.labels == ("input", "nor_conv_3x3", None, None, None, None, "nor_conv_1x1", "output")
    assert c.edges == frozenset({(0, 1), (1, 7), (1, 6), (6, 7)})


def test_conv_on_a_dead_end_edge_is_removed() -> None:
    # node1 = conv3(x) but node1 feeds nothing (edges 1->2, 1->3 are none): slot 1 goes.
    c = cell("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    assert c.labels == ("input", None, "nor_conv_1x1", None, None, None, "avg_pool_3x3", "output")
    assert c.edges == frozenset({(0, 2), (2, 6), (6, 7)})


def test_op_fed_only_by_an_unreachable_node_is_removed() -> None:
    # node1 gets nothing (0->1 none), so the conv on edge 1->3 is not on an input->output path.
    c = cell("|none~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert c.labels == ("input", None, "nor_conv_1x1", None, None, None, "nor_conv_3x3", "output")
    assert c.op_nodes == [2, 6]


def test_prune_rejects_backward_edges() -> None:
    with pytest.raises(ValueError, match="not forward"):
        prune(["input", "nor_conv_1x1", "output"], {(1, 0)})


# -- encoding --------------------------------------------------------------------------------------
def test_encoding_of_a_hand_checked_cell() -> None:
    adjacency, features = encode(cell("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"))
    # live: input 0, conv1x1 slot 2, avgpool slot 6, output 7; global 8.
    expected = np.zeros((9, 9), dtype=np.float32)
    for node in (0, 2, 6, 7, 8):
        expected[node, node] = 1
    for src, dst in ((0, 2), (2, 6), (6, 7)):
        expected[dst, src] = 1  # A[i, j] = 1 when j feeds i
    expected[8, [0, 2, 6, 7]] = 1
    np.testing.assert_array_equal(adjacency, expected)
    assert features.shape == (9, 6)
    hot = {int(n): int(np.argmax(row)) for n, row in enumerate(features) if row.any()}
    assert hot == {0: 3, 2: 0, 6: 2, 7: 4, 8: 5}  # input, conv1x1, avgpool, output, global
    assert features.sum() == 5


def test_batch_encoder_equals_per_cell_encoder_on_every_arch() -> None:
    batch = encode_all_nb201()
    assert batch.adjacency.shape == (nb201.NUM_ARCHS, 9, 9)
    assert batch.features.shape == (nb201.NUM_ARCHS, 9, 6)
    for index, c in enumerate(all_cells()):
        adjacency, features = encode(c)
        assert np.array_equal(batch.adjacency[index], adjacency), index
        assert np.array_equal(batch.features[index], features), index
        assert bool(batch.valid[index]) == c.valid


# -- canonical keys --------------------------------------------------------------------------------
def test_unique_pruned_graphs() -> None:
    keys = {c.canonical_key for c in all_cells() if c.valid}
    assert len(keys) == 5_256


def test_equivalent_cells_share_a_key() -> None:
    # output = conv3(x) + conv1(x), written three ways.
    same = [
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|",
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|",
        "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|skip_connect~1|none~2|",
    ]
    assert len({cell(s).canonical_key for s in same}) == 1
    # ... and a dead branch does not change it.
    dead = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|none~2|"
    assert cell(dead).canonical_key == cell(same[0]).canonical_key


def test_cells_differing_in_one_op_have_different_keys() -> None:
    base = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"
    other = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"
    assert cell(base).canonical_key != cell(other).canonical_key
    # one more conv on a live path is another graph too
    more = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert cell(more).canonical_key != cell(base).canonical_key


def test_nats_unique_str_agrees_on_validity() -> None:
    """Every NATS unique_str group is all valid or all invalid, and the invalid ones are our 341.

    NATS's string is an expression of the computation, not a graph key, so it is neither finer nor
    coarser than ours (see the next two tests); validity is what both must agree on.
    """
    groups: dict[str, set[bool]] = defaultdict(set)
    for row, c in zip(shipped_rows("nb201_accuracy_200ep.csv.gz"), all_cells(), strict=True):
        groups[row["unique_str"]].add(c.valid)
    assert all(len(v) == 1 for v in groups.values())
    assert len(groups) == 6_466


def test_nats_merges_cells_with_different_parameter_counts() -> None:
    """Why the brief's "each unique_str maps to one key" cannot hold: NATS sums terms as text.

    Index 0 has two conv1x1 modules and one avg-pool used twice; index 3599 one conv1x1 used twice and
    two avg-pools. Same unique_str, but different networks (NATS's own parameter counts differ).
    """
    rows = shipped_rows("nb201_accuracy_200ep.csv.gz")
    assert rows[0]["unique_str"] == rows[3599]["unique_str"]
    assert rows[0]["params_M_cifar10"] != rows[3599]["params_M_cifar10"]
    assert all_cells()[0].canonical_key != all_cells()[3599].canonical_key


def test_our_key_merges_what_nats_splits_by_multiplicity() -> None:
    """Identity cells: NATS counts how many ways x reaches the output ('0+0+0+0' vs '#+#+0'); the pruned
    graph is the same single input->output edge."""
    rows = shipped_rows("nb201_accuracy_200ep.csv.gz")
    many = Arch.from_str(
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    )
    one = Arch.from_str("|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert rows[many.index]["unique_str"] != rows[one.index]["unique_str"]
    assert nb201_cell(many).canonical_key == nb201_cell(one).canonical_key
    assert nb201_cell(one).edges == frozenset({(0, 7)})
