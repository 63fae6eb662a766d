import numpy as np
import pytest

from latbench.graph import encode_all_nb201
from predictors.gcn import GCNConfig, trunk_of, unique_graphs
from predictors.latency import LatencyPredictor
from predictors.multidevice import MultiDeviceGCN, PretrainConfig, fine_tune, fit_head, group_targets
from predictors.regressor import TrainConfig

TINY = GCNConfig(layers=2, hidden=32, dropout=0.0)


def planted(f: np.ndarray, costs: tuple[float, float, float]) -> np.ndarray:
    """A latency that depends on the op counts (columns 0-2 of the one-hot features)."""
    return 1.0 + sum(c * f[:, :, k].sum(1) for k, c in enumerate(costs))


@pytest.fixture(scope="module")
def data():
    enc = encode_all_nb201()
    idx = np.flatnonzero(enc.valid)[:400]
    a, f = enc.adjacency[idx], enc.features[idx]
    # Three "other" devices with different op costs, and a target device that mixes them.
    lat = np.stack([planted(f, (0.5, 2.0, 0.8)), planted(f, (1.0, 0.3, 0.2)), planted(f, (0.2, 0.2, 1.5))], 1)
    target = planted(f, (0.7, 1.2, 0.9))
    return a, f, lat, target


def test_group_targets_takes_the_median_of_identical_graphs_and_keeps_nan():
    enc = encode_all_nb201()
    idx = np.flatnonzero(enc.valid)[:300]
    a, f = enc.adjacency[idx], enc.features[idx]
    _, _, inverse = unique_graphs(a, f)
    assert np.bincount(inverse).max() > 2  # the fixture has repeated graphs
    rng = np.random.default_rng(0)
    lat = np.stack([rng.uniform(1, 2, idx.size), np.full(idx.size, np.nan)], 1)
    au, fu, med = group_targets(a, f, lat)
    assert au.shape[0] == fu.shape[0] == med.shape[0] == inverse.max() + 1
    for g in range(med.shape[0]):
        assert med[g, 0] == pytest.approx(np.median(lat[inverse == g, 0]))
    assert np.all(np.isnan(med[:, 1]))
    with pytest.raises(ValueError, match="shape"):
        group_targets(a, f, lat[:10])


def test_pretraining_learns_every_device_and_round_trips(tmp_path, data):
    a, f, lat, _ = data
    lat = lat.copy()
    lat[::7, 2] = np.nan  # unmeasured: masked, not learnt as anything
    pre = MultiDeviceGCN(["d0", "d1", "d2"], TINY, PretrainConfig(epochs=25, batch_size=16, learning_rate=3e-3))
    report = pre.fit(a, f, lat)
    assert report.history["loss"][-1] < 0.3 * report.history["loss"][0]
    pred = pre.predict(a, f)
    assert pred.shape == (400, 3)
    ok = np.isfinite(lat)
    for d in range(3):  # a constant per device is ~40% off on these planted latencies
        assert np.median(np.abs(pred[ok[:, d], d] / lat[ok[:, d], d] - 1)) < 0.1
    loaded = MultiDeviceGCN.load(pre.save(tmp_path / "pre"))
    assert loaded.devices == ["d0", "d1", "d2"]
    np.testing.assert_allclose(loaded.predict(a, f), pred, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        pre.fit(a, f, lat[:, :2])
    with pytest.raises(FileNotFoundError):
        MultiDeviceGCN.load(tmp_path / "missing")


def test_fine_tune_starts_from_the_pretrained_trunk_and_beats_training_from_scratch(tmp_path, data):
    a, f, lat, target = data
    pre = MultiDeviceGCN(["d0", "d1", "d2"], TINY, PretrainConfig(epochs=25, batch_size=16, learning_rate=3e-3))
    pre.fit(a, f, lat)
    tr, va, te = slice(0, 60), slice(60, 80), slice(80, None)  # few target points: where pretraining pays
    val = (a[va], f[va], target[va])

    probe = fine_tune(pre, a[tr], f[tr], target[tr], val=val, head_only=True)
    assert probe.model is not None and pre.model is not None
    for mine, theirs in zip(trunk_of(probe.model).get_weights(), trunk_of(pre.model).get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)  # head only: the trunk is untouched

    quick = TrainConfig(epochs=6, batch_size=10, learning_rate=1e-3, loss="huber", huber_delta=0.2)
    tuned = fine_tune(pre, a[tr], f[tr], target[tr], val=val, train=quick)
    scratch = LatencyPredictor(TINY, quick)
    scratch.fit(a[tr], f[tr], target[tr], val=val)

    def err(p: LatencyPredictor) -> float:
        return float(np.median(np.abs(p.predict(a[te], f[te]) / target[te] - 1)))

    assert err(probe) < 0.1
    assert err(tuned) < err(scratch)
    loaded = LatencyPredictor.load(tuned.save(tmp_path / "tuned"))  # an ordinary latency predictor
    np.testing.assert_allclose(loaded.predict(a[te], f[te]), tuned.predict(a[te], f[te]), rtol=1e-5)


def test_fit_head_solves_a_linear_read_out_exactly(data):
    a, f, _, _ = data
    p = LatencyPredictor(TINY)
    p.build()
    assert p.model is not None
    emb = np.asarray(trunk_of(p.model)([a, f]), dtype=np.float64)
    w = np.random.default_rng(1).normal(size=emb.shape[1]) * 0.05
    y = np.exp(emb @ w + 1.0)  # log latency linear in the embedding: the probe must recover it
    fit_head(p, a, f, y, alphas=(1e-8,))
    np.testing.assert_allclose(p.predict(a, f), y, rtol=2e-3)
