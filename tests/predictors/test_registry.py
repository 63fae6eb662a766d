"""The predictor registry on SQLite and PostgreSQL: versions, states, artifacts copied through the store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.devices import UnknownDevice, ensure_device
from latbench.store.models import PredictorState, utcnow
from predictors import registry

DEVICE = "desktop_cpu_test_box_fp32"
OTHER = "mobile_gpu_test_phone_int8"


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s:
        ensure_device(s, DEVICE)
        ensure_device(s, OTHER)
        s.commit()
    yield factory
    engine.dispose()


def _register(s: Session, device: str | None = DEVICE, kind: str = "latency", **kw) -> int:
    args = {"method": "gcn", "train_indices": [5, 3, 9], "hyperparameters": {"hidden": 8}, "measurement_count": 10}
    return registry.register_version(s, device, kind, **{**args, **kw}).id


def _artifact(tmp_path: Path, name: str = "art") -> Path:
    d = tmp_path / name
    (d / "sub").mkdir(parents=True)
    (d / "config.json").write_text('{"kind": "latency"}')
    (d / "sub" / "model.weights.h5").write_bytes(bytes(range(256)) * 10)
    return d


def test_versions_count_per_device_and_kind(factory) -> None:
    with factory() as s:
        first = registry.register_version(
            s, DEVICE, "latency", method="gcn", train_indices=[5, 3, 9], hyperparameters={}, measurement_count=10
        )
        assert (first.version, first.state, first.train_count) == (1, "training", 3)
        assert first.train_hash == registry.training_hash([9, 5, 3, 3])  # order and repeats do not matter
        assert first.train_hash != registry.training_hash([9, 5, 4])
        second = registry.get_version(s, _register(s))
        other_device = registry.get_version(s, _register(s, OTHER))
        other_kind = registry.get_version(s, _register(s, kind="flops"))
        accuracy = registry.get_version(s, _register(s, None, "accuracy"))
        assert [second.version, other_device.version, other_kind.version, accuracy.version] == [2, 1, 1, 1]
        assert registry.device_name(accuracy) is None and registry.device_name(second) == DEVICE


def test_bad_requests_name_the_problem(factory) -> None:
    with factory() as s:
        with pytest.raises(registry.RegistryError, match="unknown predictor kind 'speed'"):
            _register(s, kind="speed")
        with pytest.raises(registry.RegistryError, match="belongs to a device"):
            _register(s, None, "latency")
        with pytest.raises(UnknownDevice, match=f"known devices: {DEVICE}"):
            _register(s, "desktop_cpu_nowhere_fp32")
        with pytest.raises(registry.RegistryError, match="no predictor version with id 999"):
            registry.mark_failed(s, 999, "x")


def test_latest_ready_skips_training_and_failed(factory, tmp_path) -> None:
    with factory() as s:
        assert registry.latest_ready(s, DEVICE) is None
        v1, v2, v3 = (_register(s) for _ in range(3))
        registry.mark_ready(s, v1, metrics={"spearman": 0.9}, artifact="a1", artifact_dir=_artifact(tmp_path, "a1"))
        registry.mark_failed(s, v3, "diverged")
        ready = registry.latest_ready(s, DEVICE)
        assert ready is not None and ready.id == v1 and ready.metrics == {"spearman": 0.9}
        assert registry.latest(s, DEVICE).id == v3
        assert registry.latest(s, DEVICE, state=PredictorState.TRAINING).id == v2
        registry.mark_ready(s, v2, metrics={"spearman": 0.95}, artifact="a2", artifact_dir=_artifact(tmp_path, "a2"))
        assert registry.latest_ready(s, DEVICE).id == v2
        assert registry.latest_ready(s, OTHER) is None
        with pytest.raises(registry.RegistryError, match="is ready, not training"):
            registry.mark_ready(s, v2, metrics={}, artifact="a2")
        failed = registry.get_version(s, v3)
        assert failed.error == "diverged" and failed.finished_at is not None


def test_list_versions_filters_and_counts(factory) -> None:
    with factory() as s:
        ids = [_register(s) for _ in range(3)] + [_register(s, OTHER)]
        registry.mark_failed(s, ids[0], "x")
        total, page = registry.list_versions(s, device=DEVICE, limit=2)
        assert total == 3 and [r.id for r in page] == [ids[2], ids[1]]  # newest first
        assert registry.list_versions(s, state="failed")[0] == 1
        assert registry.list_versions(s, kind="latency")[0] == 4
        assert registry.list_versions(s, kind="flops")[0] == 0


def test_artifact_goes_through_the_store(factory, tmp_path) -> None:
    """A server with another workdir gets the trainer's files byte for byte, and repairs a damaged copy."""
    src = _artifact(tmp_path)
    with factory() as s:
        vid = _register(s)
        rel = registry.artifact_dir_for(DEVICE, "latency", 1)
        registry.mark_ready(s, vid, metrics={}, artifact=rel, artifact_dir=src)
        assert sorted(f.name for f in registry.stored_files(s, vid)) == ["config.json", "sub/model.weights.h5"]
        server_workdir = tmp_path / "server"
        out = registry.materialize(s, registry.get_version(s, vid), server_workdir)
        assert out == server_workdir / rel
        for name in ("config.json", "sub/model.weights.h5"):
            assert (out / name).read_bytes() == (src / name).read_bytes()
        (out / "config.json").write_text("garbage")
        registry.materialize(s, registry.get_version(s, vid), server_workdir)
        assert (out / "config.json").read_text() == '{"kind": "latency"}'


def test_materialize_without_files_or_artifact(factory, tmp_path) -> None:
    with factory() as s:
        vid = _register(s)
        with pytest.raises(registry.RegistryError, match="has no artifact"):
            registry.materialize(s, registry.get_version(s, vid), tmp_path)
        registry.mark_ready(s, vid, metrics={}, artifact="elsewhere")  # no files copied
        with pytest.raises(registry.RegistryError, match="missing and the store has no copy"):
            registry.materialize(s, registry.get_version(s, vid), tmp_path)
        with pytest.raises(registry.RegistryError, match="holds no files"):
            registry.mark_ready(s, _register(s), metrics={}, artifact="x", artifact_dir=tmp_path / "empty")


def test_progress_and_stale_trainers(factory) -> None:
    with factory() as s:
        old, fresh = _register(s), _register(s)
        registry.update_progress(s, fresh, {"epoch": 3, "epochs": 10})
        assert registry.get_version(s, fresh).progress == {"epoch": 3, "epochs": 10}
        later = utcnow() + timedelta(seconds=100)
        assert registry.fail_stale(s, older_than_s=1000, now=later) == 0
        registry.update_progress(s, fresh, {"epoch": 4, "epochs": 10})
        # Only rows that have not beaten since (now - 50 s) fail.
        s.execute(
            registry.PredictorVersion.__table__.update()
            .where(registry.PredictorVersion.id == old)
            .values(updated_at=utcnow() - timedelta(seconds=200))
        )
        s.commit()
        assert registry.fail_stale(s, older_than_s=50) == 1
        s.expire_all()
        assert registry.get_version(s, old).state == "failed"
        assert "stopped reporting progress" in (registry.get_version(s, old).error or "")
        assert registry.get_version(s, fresh).state == "training"
        registry.mark_failed(s, fresh, "x")
        registry.update_progress(s, fresh, {"epoch": 5})  # ignored once the version has ended
        s.expire_all()
        assert registry.get_version(s, fresh).progress == {"epoch": 4, "epochs": 10}


def test_concurrent_registrations_get_distinct_versions(factory) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with factory() as s:
                for _ in range(3):
                    results.append(registry.get_version(s, _register(s)).version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == list(range(1, 13))


def test_only_first_registers_one_first_version(factory) -> None:
    with factory() as s:
        first = registry.register_version(
            s, DEVICE, "latency", method="pretrained", train_indices=[1], hyperparameters={}, measurement_count=1,
            only_first=True,
        )  # fmt: skip
        assert first.version == 1
        with pytest.raises(registry.AlreadyRegistered, match="already has latency version 1"):
            _register(s, only_first=True)
        assert registry.list_versions(s, device=DEVICE)[0] == 1
        assert _register(s, OTHER, only_first=True)  # another device is free
