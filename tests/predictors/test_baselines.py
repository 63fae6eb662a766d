import numpy as np
import pytest

from latbench.graph import encode_all_nb201, nb201_cell
from latbench.nb201 import Arch
from predictors import baselines


@pytest.fixture(scope="module")
def nb201():
    enc = encode_all_nb201()
    return enc.adjacency[enc.valid], enc.features[enc.valid]


def test_decode_inverts_encode():
    enc = encode_all_nb201()
    for index in range(0, 15625, 131):
        assert baselines.decode(enc.adjacency[index], enc.features[index]) == nb201_cell(Arch.from_index(index))


def test_op_counts_of_a_known_cell():
    # |nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|
    cell = nb201_cell(Arch.from_op_code("324133"))
    from latbench.graph import encode

    adj, feat = encode(cell)
    counts = baselines.op_counts(adj[None], feat[None])[0]
    # 1x1: edge 0->2; 3x3: 0->1, 1->3, 2->3; pool: 1->2. Node 2 sums 2 inputs (1 add);
    # the output sums 3x3(1->3), 3x3(2->3) and the skip's bridged inputs (the input node): 3 inputs, 2 adds.
    assert counts.tolist() == [1, 3, 1, 3, 1]


def test_flops_predictor_recovers_a_planted_line(nb201):
    adj, feat = nb201

    def flops_fn(a, f):  # a stand-in FLOPs counter: a weighted count of the op kinds
        return 1e6 * (f[:, :, 0].sum(1) * 2 + f[:, :, 1].sum(1) * 18 + f[:, :, 2].sum(1)) + 5e5

    fake_flops = flops_fn(adj, feat)
    y = 3e-8 * fake_flops + 0.7
    pred = baselines.FlopsPredictor(flops_fn).fit(adj, feat, y)
    assert pred.coef == pytest.approx((3e-8, 0.7), rel=1e-6)
    assert np.allclose(pred.predict(adj, feat), y)


def test_layerwise_recovers_planted_op_costs(nb201):
    adj, feat = nb201
    costs = np.array([0.3, 1.2, 0.5, 0.0, 2.0])  # conv1x1, conv3x3, pool, add, fixed
    y = baselines.op_counts(adj, feat) @ costs
    lw = baselines.LayerwisePredictor().fit(adj[:900], feat[:900], y[:900])
    assert lw.op_costs is not None
    assert [lw.op_costs[k] for k in (*baselines.OP_KINDS, baselines.FIXED)] == pytest.approx(costs, abs=1e-8)
    assert lw.factor == pytest.approx(1.0)
    assert np.allclose(lw.predict(adj, feat), y)


def test_layerwise_with_measured_costs_fits_only_the_factor(nb201):
    adj, feat = nb201
    measured = {"nor_conv_1x1": 0.1, "nor_conv_3x3": 0.4, "avg_pool_3x3": 0.2, "add": 0.05, "fixed": 1.0}
    true_sum = baselines.op_counts(adj, feat) @ np.array(list(measured.values()))
    lw = baselines.LayerwisePredictor(measured).fit(adj, feat, 2.5 * true_sum)
    assert lw.factor == pytest.approx(2.5)
    assert lw.op_costs == measured
    with pytest.raises(ValueError, match="lacks"):
        baselines.LayerwisePredictor({"nor_conv_1x1": 1.0})


def test_nnls_clamps_a_negative_coefficient():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, (50, 3))
    b = a @ np.array([1.0, -2.0, 3.0])
    x = baselines.nnls(a, b)
    assert np.all(x >= 0)
    assert x[1] == 0.0
    # optimal over the remaining columns
    ls = np.linalg.lstsq(a[:, [0, 2]], b, rcond=None)[0]
    if np.all(ls > 0):
        assert x[[0, 2]] == pytest.approx(ls)


def test_unfitted_and_bad_inputs(nb201):
    adj, feat = nb201
    with pytest.raises(ValueError, match="not fitted"):
        baselines.LayerwisePredictor().predict(adj, feat)
    with pytest.raises(ValueError, match="one value per graph"):
        baselines.LayerwisePredictor().fit(adj, feat, np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        baselines.LayerwisePredictor().fit(adj[:2], feat[:2], np.array([1.0, np.nan]))
