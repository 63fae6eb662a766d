"""search.space: the arrays every search shares, and one-edge mutation."""

from __future__ import annotations

import numpy as np
import pytest

from latbench import nb201
from latbench.graph import encode, nb201_cell
from search.space import mutate, nb201_space, neighbours


def test_space_matches_nb201_tables() -> None:
    space = nb201_space()
    assert space.size == 15_625
    assert int((~space.valid).sum()) == 341
    for index in (0, 1, 9930, 15_624):
        arch = nb201.Arch.from_index(index)
        assert tuple(space.ops[index]) == arch.ops
        assert space.arch_str(index) == arch.arch_str
        adjacency, features = encode(nb201_cell(arch))
        np.testing.assert_array_equal(space.encodings.adjacency[index], adjacency)
        np.testing.assert_array_equal(space.encodings.features[index], features)
    assert np.array_equal(space.index_of_ops(space.ops), np.arange(space.size))


def test_arrays_are_read_only() -> None:
    with pytest.raises(ValueError):
        nb201_space().ops[0, 0] = 1


def test_unique_encodings_group_identical_graphs() -> None:
    space = nb201_space()
    first, inverse = space.unique_encodings()
    assert 5_000 < first.size < space.size
    enc = space.encodings
    np.testing.assert_array_equal(enc.adjacency[first[inverse]], enc.adjacency)
    np.testing.assert_array_equal(enc.features[first[inverse]], enc.features)


def test_mutation_changes_exactly_one_edge() -> None:
    space = nb201_space()
    rng = np.random.default_rng(0)
    for index in rng.integers(0, space.size, 200):
        child = mutate(space, int(index), rng)
        assert int(np.sum(space.ops[child] != space.ops[index])) == 1


def test_mutation_reaches_every_neighbour_uniformly() -> None:
    space = nb201_space()
    rng = np.random.default_rng(1)
    counts: dict[int, int] = {}
    for _ in range(4800):
        child = mutate(space, 9930, rng)
        counts[child] = counts.get(child, 0) + 1
    assert set(counts) == set(neighbours(space, 9930).tolist())
    assert len(counts) == 24
    # 200 expected each; a binomial(4800, 1/24) stays within +-60 with probability > 0.9999 per neighbour.
    assert all(140 <= c <= 260 for c in counts.values())


def test_check_indices_names_the_bad_one() -> None:
    with pytest.raises(nb201.ArchError, match="15625"):
        nb201_space().check_indices([1, 15_625])
