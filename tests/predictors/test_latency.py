import json

import numpy as np
import pytest

from latbench.graph import encode_all_nb201
from predictors.gcn import GCNConfig
from predictors.latency import LatencyPredictor
from predictors.regressor import TargetTransform, TrainConfig

TINY = GCNConfig(layers=2, hidden=32, dropout=0.0)


def quick(**kw):
    return TrainConfig(**{"epochs": 8, "batch_size": 16, "learning_rate": 3e-3, **kw})


@pytest.fixture(scope="module")
def data():
    """200 NB201 cells with a synthetic latency that depends on the ops (so it is learnable)."""
    enc = encode_all_nb201()
    idx = np.flatnonzero(enc.valid)[:260]
    a, f = enc.adjacency[idx], enc.features[idx]
    y = 1.0 + f[:, :, 0].sum(1) * 0.5 + f[:, :, 1].sum(1) * 2.0 + f[:, :, 2].sum(1) * 0.8
    return a[:200], f[:200], y[:200], (a[200:], f[200:], y[200:])


def test_training_lowers_the_loss(data):
    a, f, y, val = data
    p = LatencyPredictor(TINY, quick(epochs=15))
    report = p.fit(a, f, y, val=val)
    losses = report.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert report.history["val_loss"][report.best_epoch - 1] == pytest.approx(report.best_loss)
    pred = p.predict(*val[:2])
    assert pred.shape == (60,)
    assert np.median(np.abs(pred / val[2] - 1)) < 0.25  # it learnt something (a constant is ~40% off)


def test_progress_is_reported_per_epoch(data):
    a, f, y, val = data
    seen = []
    LatencyPredictor(TINY, quick(epochs=3)).fit(a, f, y, val=val, progress=lambda e, n, logs: seen.append((e, n, logs)))
    assert [e for e, _, _ in seen] == [1, 2, 3]
    assert all(n == 3 and {"loss", "val_loss", "learning_rate"} <= set(logs) for _, n, logs in seen)


def test_same_seed_same_predictions_other_seed_differs(data):
    a, f, y, val = data
    runs = []
    for seed in (1, 1, 2):
        p = LatencyPredictor(GCNConfig(layers=2, hidden=32, dropout=0.1), quick(epochs=4, seed=seed))
        p.fit(a, f, y, val=val)
        runs.append(p.predict(*val[:2]))
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_save_load_round_trip(tmp_path, data):
    a, f, y, val = data
    p = LatencyPredictor(TINY, quick(epochs=3))
    p.fit(a, f, y, val=val)
    p.save(tmp_path / "pred")
    meta = json.loads((tmp_path / "pred" / "config.json").read_text())
    assert meta["kind"] == "latency" and meta["gcn"]["hidden"] == 32 and meta["target"]["kind"] == "log"
    q = LatencyPredictor.load(tmp_path / "pred")
    assert np.array_equal(q.predict(a, f), p.predict(a, f))
    assert q.report is not None and q.report.epochs == 3


def test_load_rejects_other_kinds_and_missing_files(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="not a saved predictor"):
        LatencyPredictor.load(tmp_path)
    a, f, y, _val = data
    p = LatencyPredictor(TINY, quick(epochs=1))
    p.fit(a, f, y)
    p.save(tmp_path / "p")
    cfg = tmp_path / "p" / "config.json"
    cfg.write_text(cfg.read_text().replace('"kind": "latency"', '"kind": "accuracy"'))
    with pytest.raises(ValueError, match="not 'latency'"):
        LatencyPredictor.load(tmp_path / "p")


def test_duplicates_and_nb201_batch(data):
    a, f, y, _ = data
    p = LatencyPredictor(TINY, quick(epochs=1))
    p.fit(a, f, y)
    single = p.predict(a[:5], f[:5])
    doubled = p.predict(np.concatenate([a[:5], a[:5]]), np.concatenate([f[:5], f[:5]]))
    assert np.allclose(doubled, np.concatenate([single, single]), rtol=1e-6)
    everything = p.predict_nb201()
    enc = encode_all_nb201()
    assert everything.shape == (15625,)
    assert np.all(np.isnan(everything[~enc.valid])) and np.all(everything[enc.valid] > 0)


def test_bad_inputs_are_named(data):
    a, f, y, _ = data
    p = LatencyPredictor(TINY, quick(epochs=1))
    with pytest.raises(ValueError, match="NaN"):
        p.fit(a, f, np.where(np.arange(200) == 3, np.nan, y))
    with pytest.raises(ValueError, match="positive"):
        p.fit(a, f, -y)
    with pytest.raises(ValueError, match=r"shape \(B, 9, 9\)"):
        p.fit(a[:, :8, :8], f, y)
    with pytest.raises(ValueError, match="values for 200 graphs"):
        p.fit(a, f, y[:10])
    with pytest.raises(ValueError, match="not trained"):
        p.predict(a, f)
    with pytest.raises(ValueError, match="target must be"):
        TrainConfig(target="sqrt")


def test_target_transforms_invert():
    y = np.array([1.0, 2.0, 50.0])
    for kind in TargetTransform.KINDS:
        t = TargetTransform(kind).fit(y)
        z = t.forward(y)
        assert abs(float(np.mean(z))) < 1e-6 and np.std(z) == pytest.approx(1.0, rel=1e-5)
        assert np.allclose(t.inverse(z), y, rtol=1e-6)


def test_default_recipe_and_huber_loss(data):
    assert LatencyPredictor().train.loss == "huber" and LatencyPredictor().train.learning_rate == 8e-4
    a, f, y, val = data
    y_noisy = y.copy()
    y_noisy[::20] *= 3.0  # a few wild timings
    p = LatencyPredictor(TINY, quick(epochs=15, loss="huber", huber_delta=0.2))
    p.fit(a, f, y_noisy, val=val)
    assert np.median(np.abs(p.predict(*val[:2]) / val[2] - 1)) < 0.25
    with pytest.raises(ValueError, match="loss must be"):
        TrainConfig(loss="l3")


def test_layerwise_prior_fits_predicts_and_round_trips(tmp_path, data):
    a, f, y, val = data
    p = LatencyPredictor(TINY, quick(epochs=6, loss="huber", huber_delta=0.2), prior="layerwise")
    p.fit(a, f, y, val=val)
    assert p.prior_model is not None and p.prior_model.op_costs is not None
    pred = p.predict(*val[:2])
    # the synthetic latency is exactly linear in the op counts, so the prior alone is nearly exact
    # and the GCN only has to learn a factor close to 1
    assert np.median(np.abs(pred / val[2] - 1)) < 0.1
    p.save(tmp_path / "prior")
    q = LatencyPredictor.load(tmp_path / "prior")
    assert q.prior == "layerwise"
    assert np.array_equal(q.predict(a, f), p.predict(a, f))
    with pytest.raises(ValueError, match="prior must be"):
        LatencyPredictor(prior="flops")
    with pytest.raises(ValueError, match="log target"):
        LatencyPredictor(train=TrainConfig(target="standard"), prior="layerwise")


def test_recommended_recipe():
    p = LatencyPredictor.recommended(seed=3)
    assert p.prior == "layerwise" and p.train.loss == "huber" and p.train.seed == 3
    assert p.train.batch_size == 10 and p.gcn == GCNConfig()
