"""Training versions from the store (GCN and few-shot), the trainer service's decisions, shipped predictors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from latbench.data import load_latency
from latbench.graph import encode_all_nb201
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.devices import UnknownDevice, ensure_device
from latbench.store.models import PredictorVersion
from predictors import registry
from predictors.pretrained import manifest, shipped_devices
from predictors.service import (
    AccuracyOptions,
    Interrupted,
    Trainer,
    TrainerConfig,
    TrainingError,
    TrainOptions,
    load_device_data,
    register_shipped,
    split_data,
    train_accuracy,
    train_latency,
)
from predictors.serving import PredictionService, load_predictor
from tests._helpers import distinct_valid

from ._store_helpers import TINY, add_measurements, synthetic_ms

DEVICE = "desktop_cpu_test_box_fp32"
GPU = "desktop_gpu_gtx_1080ti_fp32"


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def sqlite_factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'eagle.db'}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def _versions(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(PredictorVersion)) or 0)


# -- data and splits ----------------------------------------------------------------------------------------
def test_split_follows_the_paper_and_shrinks_for_small_sets() -> None:
    big = split_data(15_000, 900, seed=0)
    assert (big.train.size, big.val.size, big.test.size) == (900, 100, 14_000)
    parts = np.concatenate([big.train, big.val, big.test])
    assert np.array_equal(np.sort(parts), np.arange(15_000))  # a partition
    assert not np.array_equal(split_data(15_000, 900, seed=1).train, big.train)
    small = split_data(100, 900, seed=0)
    assert small.test.size >= 10 and small.val.size >= 2 and small.train.size + small.val.size + small.test.size == 100
    with pytest.raises(TrainingError, match=r"too few to train a GCN.*--few-shot"):
        split_data(12, 900, seed=0)
    with pytest.raises(TrainingError, match="--train-size must be positive"):
        split_data(100, 0, seed=0)


def test_device_data_takes_the_newest_measurement(factory) -> None:
    idx = distinct_valid(3)
    add_measurements(factory, DEVICE, idx, [1.0, 2.0, 3.0], age_s=100)
    add_measurements(factory, DEVICE, idx[:1], [9.0])  # re-measured later
    with factory() as s:
        data = load_device_data(s, DEVICE)
        with pytest.raises(UnknownDevice, match="known devices"):
            load_device_data(s, "desktop_cpu_nowhere_fp32")
    assert data.measurement_count == 4
    assert dict(zip(data.indices.tolist(), data.latency_ms.tolist(), strict=True)) == {
        idx[0]: 9.0,
        idx[1]: 2.0,
        idx[2]: 3.0,
    }


# -- one training -------------------------------------------------------------------------------------------
def test_train_latency_registers_a_served_version(factory, tmp_path) -> None:
    idx = distinct_valid(70)
    add_measurements(factory, DEVICE, idx, synthetic_ms(idx))
    seen: list[dict] = []
    row = train_latency(factory, DEVICE, tmp_path, TINY, seen.append)
    assert (row.state, row.method, row.version, row.kind) == ("ready", "gcn", 1, "latency")
    epochs = [p["epoch"] for p in seen if p.get("phase") == "training"]
    assert epochs == list(range(1, epochs[-1] + 1)) and epochs[-1] <= TINY.epochs
    m = row.metrics or {}
    assert {"within_5pct", "within_10pct", "spearman", "n_test", "n_train", "epochs"} <= set(m)
    assert m["n_train"] == 48 and m["n_test"] == 70 - 48 - m["n_val"]
    assert row.train_count == 48 and row.measurement_count == 70
    assert row.hyperparameters["gcn"]["hidden"] == 16
    with factory() as s:
        stored = registry.get_version(s, row.id)
        assert stored.progress["phase"] == "done"
        assert {f.name for f in registry.stored_files(s, row.id)} == {"config.json", "model.weights.h5"}
    # The saved predictor and the served table agree.
    directory = tmp_path / row.artifact
    predictor = load_predictor(directory)
    enc = encode_all_nb201()
    some = np.array(idx[:5])
    served = PredictionService(factory, tmp_path / "server").served(DEVICE)
    assert served.version == 1 and served.method == "gcn"
    np.testing.assert_allclose(
        served.table[some], predictor.predict(enc.adjacency[some], enc.features[some]), rtol=1e-5
    )


def test_stopped_training_is_marked_failed(sqlite_factory, tmp_path) -> None:
    idx = distinct_valid(60)
    add_measurements(sqlite_factory, DEVICE, idx, synthetic_ms(idx))

    def stop_at_two(progress: dict) -> None:
        if progress.get("epoch") == 2:
            raise Interrupted("stop requested")

    with pytest.raises(Interrupted):
        train_latency(sqlite_factory, DEVICE, tmp_path, TINY, stop_at_two)
    with sqlite_factory() as s:
        row = registry.latest(s, DEVICE)
        assert row is not None and row.state == "failed" and "Interrupted: stop requested" in (row.error or "")
        assert registry.latest_ready(s, DEVICE) is None


def test_too_few_measurements_register_nothing(sqlite_factory, tmp_path) -> None:
    idx = distinct_valid(12)
    add_measurements(sqlite_factory, DEVICE, idx, synthetic_ms(idx))
    with pytest.raises(TrainingError, match=r"12 measured models are too few.*--few-shot"):
        train_latency(sqlite_factory, DEVICE, tmp_path, TINY)
    with pytest.raises(TrainingError, match="few-shot adaptation needs at least 5"):
        add_measurements(sqlite_factory, "mobile_cpu_tiny_phone_int8", idx[:3], [1.0, 2.0, 3.0])
        train_latency(sqlite_factory, "mobile_cpu_tiny_phone_int8", tmp_path, TrainOptions(few_shot=True))
    assert _versions(sqlite_factory) == 0


@pytest.mark.slow
def test_few_shot_adapts_the_shipped_predictors(sqlite_factory, tmp_path) -> None:
    """A new device twice as slow as the GTX 1080 Ti: 20 measurements suffice for ±10% on held-out models."""
    assert len(shipped_devices()) == 13
    gpu = np.asarray(load_latency().column(GPU))
    measured = np.flatnonzero(np.isfinite(gpu) & encode_all_nb201().valid)
    idx = np.random.default_rng(3).choice(measured, 220, replace=False)
    new = "desktop_gpu_new_box_fp32"
    add_measurements(sqlite_factory, new, idx.tolist(), 2.0 * gpu[idx])
    row = train_latency(sqlite_factory, new, tmp_path, TrainOptions(few_shot=True, shots=20, seed=1))
    assert (row.method, row.state, row.train_count) == ("few-shot", "ready", 20)
    m = row.metrics or {}
    assert m["evaluation"] == "held-out measurements" and m["n_test"] == 200
    assert m["within_10pct"] >= 85 and m["spearman"] >= 0.95, m
    assert "cv" in m and m["cv"]["n_test"] == 20
    assert row.hyperparameters["bases"] == shipped_devices()  # a new device uses every LatBench device
    predictor = load_predictor(tmp_path / row.artifact)
    enc = encode_all_nb201()
    pred = predictor.predict(enc.adjacency[idx[:50]], enc.features[idx[:50]])
    assert np.median(np.abs(pred / (2.0 * gpu[idx[:50]]) - 1)) < 0.05


@pytest.mark.slow
def test_few_shot_on_a_latbench_device_leaves_its_own_predictor_out(sqlite_factory, tmp_path) -> None:
    y = np.asarray(load_latency().column(GPU))
    idx = np.flatnonzero(np.isfinite(y) & encode_all_nb201().valid)[:30]
    add_measurements(sqlite_factory, GPU, idx.tolist(), y[idx])
    row = train_latency(sqlite_factory, GPU, tmp_path, TrainOptions(few_shot=True))
    assert GPU not in row.hyperparameters["bases"] and len(row.hyperparameters["bases"]) == 12
    assert row.metrics["evaluation"].startswith("leave-one-out cross-validation on the 30")


# -- the trainer service ------------------------------------------------------------------------------------
def test_trainer_trains_due_devices_once(factory, tmp_path) -> None:
    idx = distinct_valid(80)
    add_measurements(factory, DEVICE, idx[:60], synthetic_ms(idx[:60]))
    add_measurements(factory, "mobile_cpu_few_phone_int8", idx[:4], [1.0] * 4)  # below min_total
    said: list[str] = []
    config = TrainerConfig(min_new=10, min_total=30, gcn_min=50, interval_s=1, options=TINY)
    trainer = Trainer(factory, tmp_path, config, say=said.append)
    with factory() as s:
        due = trainer.due(s)
    assert [(d.device, d.few_shot, d.reason) for d in due] == [(DEVICE, False, "no predictor yet, 60 measurements")]
    results = trainer.run_once()
    assert [(r["device"], r["state"], r["version"]) for r in results] == [(DEVICE, "ready", 1)]
    assert any("version 1 ready" in line for line in said)
    assert trainer.run_once() == []  # nothing new
    add_measurements(factory, DEVICE, idx[60:70], synthetic_ms(idx[60:70]))
    with factory() as s:
        (due,) = trainer.due(s)
        assert due.reason == "10 new measurements since version 1"
        # A version in training (another trainer) holds the device back.
        registry.register_version(
            s, DEVICE, "latency", method="gcn", train_indices=[1], hyperparameters={}, measurement_count=70
        )
        assert trainer.due(s) == []


def test_trainer_stop_abandons_the_training(sqlite_factory, tmp_path) -> None:
    idx = distinct_valid(60)
    add_measurements(sqlite_factory, DEVICE, idx, synthetic_ms(idx))
    trainer = Trainer(sqlite_factory, tmp_path, TrainerConfig(min_total=30, gcn_min=50, options=TINY), say=print)
    trainer.stop.set()
    assert trainer.run() == 0  # stopped before any pass
    trainer.stop.clear()
    original = trainer._check_stop

    def stop_soon(progress: dict) -> None:
        if progress.get("epoch") == 1:
            trainer.stop.set()
        original(progress)

    trainer._check_stop = stop_soon  # type: ignore[method-assign]
    assert trainer.run() == 0
    with sqlite_factory() as s:
        assert registry.latest(s, DEVICE).state == "failed"


def test_trainer_config_is_checked() -> None:
    with pytest.raises(TrainingError, match="--min-new >= 1"):
        TrainerConfig(min_new=0)
    with pytest.raises(TrainingError, match="--shots must be at least 5"):
        TrainOptions(shots=2)


# -- shipped predictors -------------------------------------------------------------------------------------
def test_shipped_predictors_are_registered_once_and_served(factory, tmp_path) -> None:
    y = np.asarray(load_latency().column(GPU))
    idx = np.flatnonzero(np.isfinite(y) & encode_all_nb201().valid)[:200]
    add_measurements(factory, GPU, idx.tolist(), y[idx])
    with factory() as s:
        ensure_device(s, "embedded_tpu_edgetpu_int8")  # shipped, but no measurement: skipped
        s.commit()
        assert register_shipped(s) == [GPU]
        assert register_shipped(s) == []
        row = registry.latest_ready(s, GPU)
        assert row is not None and (row.method, row.artifact, row.version) == ("pretrained", "package:" + GPU, 1)
        entry = manifest()["devices"][GPU]
        assert row.train_count == entry["train_count"] and row.train_indices is None
        assert row.metrics == entry["metrics"] and row.measurement_count == 200
        assert registry.latest(s, "embedded_tpu_edgetpu_int8") is None
    served = PredictionService(factory, tmp_path).served(GPU)
    within = np.abs(served.table[idx] / y[idx] - 1) <= 0.10
    assert within.mean() >= 0.9  # LatBench's own values, mostly seen in training


def test_trainer_does_not_promote_a_worse_version(sqlite_factory, tmp_path) -> None:
    idx = distinct_valid(70)
    add_measurements(sqlite_factory, DEVICE, idx[:50], synthetic_ms(idx[:50]))
    config = TrainerConfig(min_new=10, min_total=30, gcn_min=40, options=TINY)
    trainer = Trainer(sqlite_factory, tmp_path, config, say=print)
    (first,) = trainer.run_once()
    assert first["state"] == "ready"
    with sqlite_factory() as s:  # pretend the served version is perfect: nothing can beat it
        served = registry.latest_ready(s, DEVICE)
        served.metrics = {**(served.metrics or {}), "within_10pct": 100.0}
        s.commit()
    add_measurements(sqlite_factory, DEVICE, idx[50:], synthetic_ms(idx[50:]))
    (second,) = trainer.run_once()
    assert second["state"] == "failed" and "below the gate 99.0" in second["error"]
    with sqlite_factory() as s:
        rejected = registry.latest(s, DEVICE)
        assert rejected.version == 2 and rejected.metrics["within_10pct"] < 99.0
        assert registry.latest_ready(s, DEVICE).version == 1  # still served
    assert trainer.run_once() == []  # measured-count based: not retried until min_new more arrive
    ungated = Trainer(sqlite_factory, tmp_path, TrainerConfig(min_new=1, min_total=30, gcn_min=40, gate_tolerance=None,
                                                              options=TINY), say=print)  # fmt: skip
    add_measurements(sqlite_factory, DEVICE, idx[:1], [3.0])
    (third,) = ungated.run_once()
    assert third["state"] == "ready" and third["version"] == 3


def test_accuracy_version_on_either_store_and_a_stopped_one_marked_failed(factory, tmp_path) -> None:
    tiny = AccuracyOptions(samples=20, layers=2, hidden=8, epochs=3, pretrain_epochs=1, recipe="robust")
    row = train_accuracy(factory, tmp_path, tiny)
    assert (row.state, row.kind, row.device_id, row.train_count) == ("ready", "accuracy", None, 20)
    assert (tmp_path / row.artifact / "config.json").is_file()

    def stop_at_two(progress: dict) -> None:
        if progress.get("epoch") == 2:
            raise Interrupted("stop requested")

    with pytest.raises(Interrupted):
        train_accuracy(factory, tmp_path, tiny, stop_at_two)
    with factory() as s:
        failed = registry.latest(s, None, "accuracy")
        assert failed is not None and failed.version == 2 and failed.state == "failed"
        assert "Interrupted: stop requested" in (failed.error or "")
        assert registry.latest_ready(s, None, "accuracy").version == 1  # the served one is untouched
    with pytest.raises(TrainingError, match="unknown recipe 'best'"):
        AccuracyOptions(recipe="best")
