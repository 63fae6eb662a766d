import numpy as np
import pytest

from latbench.graph import encode_all_nb201
from predictors import metrics
from predictors.accuracy import AccuracyPredictor, FlopsGCN
from predictors.binary import BinaryRelationPredictor, BinaryTrainConfig
from predictors.gcn import GCNConfig
from predictors.regressor import TrainConfig

TINY = GCNConfig(layers=2, hidden=32, dropout=0.0)


@pytest.fixture(scope="module")
def data():
    """120 NB201 cells with a synthetic 'accuracy' that grows with the number of 3x3 convolutions."""
    enc = encode_all_nb201()
    idx = np.flatnonzero(enc.valid)[::97][:120]
    a, f = enc.adjacency[idx], enc.features[idx]
    acc = 60.0 + 3.0 * f[:, :, 1].sum(1) + 1.0 * f[:, :, 0].sum(1) - 1.5 * f[:, :, 2].sum(1)
    return a, f, acc


def test_accuracy_predictor_learns_and_transfer_copies_the_trunk(data):
    a, f, acc = data
    quick = TrainConfig(target="standard", epochs=12, batch_size=16, learning_rate=3e-3)
    p = AccuracyPredictor(TINY, quick)
    report = p.fit(a[:80], f[:80], acc[:80], val=(a[80:], f[80:], acc[80:]))
    assert report.history["loss"][-1] < report.history["loss"][0]
    assert metrics.spearman(p.predict(a[80:], f[80:]), acc[80:]) > 0.5

    source = FlopsGCN(TINY, TrainConfig(epochs=2, batch_size=16))
    source.fit(a, f, 1e6 * (1 + f[:, :, 1].sum(1)))
    target = AccuracyPredictor(TINY, TrainConfig(target="standard", epochs=1))
    target.build()
    target.init_trunk_from(source)
    src_w = source.model.get_layer("gcn_trunk").get_weights()
    dst_w = target.model.get_layer("gcn_trunk").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(src_w, dst_w, strict=True))
    # fit(init_from=...) starts from those weights, so one tiny step stays close to them
    target.fit(a[:20], f[:20], acc[:20], init_from=source)
    moved = target.model.get_layer("gcn_trunk").get_weights()
    assert not all(np.array_equal(x, y) for x, y in zip(src_w, moved, strict=True))
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(src_w, moved, strict=True)) < 0.1


@pytest.fixture(scope="module")
def binary(data):
    a, f, acc = data
    p = BinaryRelationPredictor(TINY, BinaryTrainConfig(epochs=6, batch_size=32, learning_rate=2e-3))
    p.fit(a[:60], f[:60], acc[:60])
    return p


def test_binary_predictor_ranks_held_out_models(binary, data):
    a, f, acc = data
    report = binary.report
    assert report is not None and report.history["loss"][-1] < report.history["loss"][0]
    scores = binary.scores(a[60:], f[60:])
    assert metrics.kendall_tau(scores, acc[60:]) > 0.4
    order = binary.rank(a[60:], f[60:])
    assert sorted(order.tolist()) == list(range(60)) and scores[order[0]] == scores.max()


def test_fast_pairwise_terms_match_the_model(binary, data):
    a, f, _ = data
    i, j = np.arange(0, 10), np.arange(10, 20)
    direct = binary.compare(a[i], f[i], a[j], f[j])
    matrix = binary.win_matrix(a[:20], f[:20])
    assert np.allclose(matrix[i, j], direct, atol=1e-5)
    wins = binary.scores(a[:20], f[:20])
    assert np.allclose(wins, np.nansum(matrix, axis=1), atol=1e-6)


def test_antisymmetry_rate(binary, data):
    a, f, _ = data
    rate = binary.antisymmetry(a, f)
    assert 0.0 <= rate <= 1.0
    p = binary.win_matrix(a, f)
    iu = np.triu_indices(len(a), 1)
    expected = np.mean((p[iu] > 0.5) ^ (p.T[iu] > 0.5))
    assert rate == pytest.approx(expected)


def test_binary_save_load(tmp_path, binary, data):
    a, f, _ = data
    binary.save(tmp_path / "b")
    loaded = BinaryRelationPredictor.load(tmp_path / "b")
    assert np.array_equal(loaded.scores(a, f), binary.scores(a, f))
    with pytest.raises(ValueError, match="not 'binary_relation'"):
        (tmp_path / "b" / "config.json").write_text('{"kind": "latency"}')
        BinaryRelationPredictor.load(tmp_path / "b")


def test_binary_bad_inputs(data):
    a, f, acc = data
    p = BinaryRelationPredictor(TINY, BinaryTrainConfig(epochs=1))
    with pytest.raises(ValueError, match="at least 2 models"):
        p.fit(a[:1], f[:1], acc[:1])
    with pytest.raises(ValueError, match="values for 5 graphs"):
        p.fit(a[:5], f[:5], acc[:4])
    with pytest.raises(ValueError, match="not trained"):
        p.scores(a, f)
