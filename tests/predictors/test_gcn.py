import numpy as np
import pytest

from latbench.graph import encode_all_nb201, nb201_cell
from latbench.nb201 import all_archs
from predictors.gcn import BatchRunner, GCNConfig, build_gcn, build_trunk, canonical_order, unique_graphs

TINY = GCNConfig(layers=3, hidden=16, dropout=0.0)


@pytest.fixture(scope="module")
def enc():
    return encode_all_nb201()


def test_shapes(enc):
    model = build_gcn(TINY)
    out = model([enc.adjacency[:5], enc.features[:5]], training=False)
    assert tuple(out.shape) == (5, 1)
    trunk = build_trunk(TINY)
    assert tuple(trunk([enc.adjacency[:5], enc.features[:5]]).shape) == (5, 16)


def test_last_layer_computes_the_global_row_of_the_full_layer(enc):
    cfg = GCNConfig(layers=2, hidden=8, dropout=0.0)
    trunk = build_trunk(cfg)
    a, f = enc.adjacency[:7], enc.features[:7]
    w0, b0 = trunk.get_layer("graph_conv_0").get_weights()
    gamma, beta = trunk.get_layer("norm_0").get_weights()
    w1, b1 = trunk.get_layer("graph_conv_1").get_weights()
    h = np.maximum(a @ (f @ w0) + b0, 0)
    mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    h = (h - mu) / np.sqrt(var + 1e-3) * gamma + beta
    full = np.maximum(a @ (h @ w1) + b1, 0)  # every row, then the global node's
    assert np.allclose(np.asarray(trunk([a, f])), full[:, -1], atol=1e-5)


def test_output_does_not_depend_on_node_numbering(enc):
    model = build_gcn(TINY)
    a, f = enc.adjacency[100:110], enc.features[100:110]
    perm = np.array([3, 0, 7, 1, 6, 2, 5, 4, 8])  # global node stays last
    ap, fp = a[:, perm][:, :, perm], f[:, perm]
    assert np.allclose(np.asarray(model([a, f])), np.asarray(model([ap, fp])), atol=1e-5)


def test_unique_graphs_merges_exactly_the_equivalent_nb201_cells(enc):
    valid = enc.valid
    adj, _feat, inverse = unique_graphs(enc.adjacency[valid], enc.features[valid])
    assert adj.shape == (5256, 9, 9)  # the number of distinct pruned NB201 cells
    keys = np.array([nb201_cell(a).canonical_key for a in all_archs()])[valid]
    # same group <=> same canonical key
    first_key = {}
    for group, key in zip(inverse, keys, strict=True):
        assert first_key.setdefault(group, key) == key
    assert len(set(keys)) == len(first_key)


def test_canonical_order_is_a_permutation_fixing_the_global_node(enc):
    order = canonical_order(enc.adjacency[:50], enc.features[:50])
    assert np.all(np.sort(order, axis=1) == np.arange(9))
    assert np.all(order[:, -1] == 8)


def test_batch_runner_matches_direct_call_and_pads(enc):
    model = build_gcn(TINY)
    runner = BatchRunner(model, chunk=64)
    a, f = enc.adjacency[:150], enc.features[:150]  # 64 + 64 + 22 (padded to 32)
    assert np.allclose(runner(a, f), np.asarray(model([a, f], training=False)), atol=1e-5)
    assert runner(a[:0], f[:0]).shape == (0, 1)


def test_config_validation():
    with pytest.raises(ValueError, match="at least 1 graph layer"):
        GCNConfig(layers=0)
    with pytest.raises(ValueError, match="dropout"):
        GCNConfig(dropout=1.5)
    with pytest.raises(ValueError, match="unknown GCN config keys"):
        GCNConfig.from_dict({"layers": 2, "width": 3})
    assert GCNConfig.from_dict(TINY.to_dict()) == TINY
