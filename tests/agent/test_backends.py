"""The backend interface and registry, the artifact cache, and the debug backend (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eagle_agent.backends import (
    ArtifactCache,
    Backend,
    BackendError,
    ErrorClass,
    JobSpec,
    UnknownBackendError,
    backend_names,
    create_backend,
    load_backend_class,
    register_backend,
    stage,
)
from eagle_agent.backends.debug import DebugBackend
from eagle_agent.worker import measure_job
from latbench.nb201 import Arch


def job(index: int = 5, **kw: object) -> JobSpec:
    fields: dict[str, object] = {
        "job_id": 1,
        "lease_id": "L",
        "arch_index": index,
        "arch_str": Arch.from_index(index).arch_str,
        "runtime": "tf",
        "precision": "fp32",
        "runs": 20,
        "warmup": 0,
        "group_size": 10,
    }
    fields.update(kw)
    return JobSpec(**fields)  # type: ignore[arg-type]


def test_registry_knows_the_cpu_backends_and_loads_specs() -> None:
    assert {"cpu_tf", "cpu_litert", "debug"} <= set(backend_names())
    assert load_backend_class("debug") is DebugBackend
    assert load_backend_class("eagle_agent.backends.debug:DebugBackend") is DebugBackend
    cls = load_backend_class("cpu_litert")
    assert (cls.runtime, cls.precisions) == ("litert", ("fp32", "fp16", "int8"))
    with pytest.raises(UnknownBackendError, match=r"unknown backend 'no_such_npu'; known: .*cpu_tf"):
        load_backend_class("no_such_npu")
    with pytest.raises(UnknownBackendError, match="is not a Backend subclass"):
        load_backend_class("eagle_agent.backends:JobSpec")


def test_register_backend_plugs_in_a_new_module() -> None:
    class Fake(DebugBackend):
        name = "fake_npu"

    register_backend("fake_npu", Fake)
    assert isinstance(create_backend("fake_npu"), Fake)


def test_precisions_are_checked_and_shape_capabilities() -> None:
    assert create_backend("cpu_litert", precisions=["int8"]).capabilities() == ["litert:int8"]
    assert create_backend("cpu_tf").capabilities() == ["tf:fp32"]
    with pytest.raises(ValueError, match="cannot run precision int8; it runs fp32"):
        create_backend("cpu_tf", precisions=["int8"])
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        create_backend("cpu_litert", {"num_threads": 0})


def test_cpu_backend_checks_find_the_installed_frameworks() -> None:
    for name in ("cpu_tf", "cpu_litert"):
        check = create_backend(name).check()
        assert check.ok, check.missing
        assert "tensorflow" in check.found
    assert create_backend("cpu_litert").check().found["litert"].startswith("ai_edge_litert")


def test_job_arch_must_agree_with_its_string() -> None:
    assert job(5).arch() == Arch.from_index(5)
    with pytest.raises(BackendError, match="arch index 5 is") as exc:
        job(5, arch_str=Arch.from_index(6).arch_str).arch()
    assert exc.value.error_class == ErrorClass.BUILD


def test_stage_classifies_plain_exceptions_and_keeps_classified_ones() -> None:
    with pytest.raises(BackendError) as exc, stage(ErrorClass.CONVERT):
        raise RuntimeError("converter exploded")
    assert exc.value.error_class == ErrorClass.CONVERT and exc.value.message == "RuntimeError: converter exploded"
    with pytest.raises(BackendError) as exc, stage(ErrorClass.CONVERT):
        raise BackendError(ErrorClass.UNSUPPORTED, "op X")
    assert exc.value.error_class == ErrorClass.UNSUPPORTED


def test_measure_job_with_the_debug_backend(tmp_path: Path) -> None:
    result = measure_job(DebugBackend({"latency_ms": 2.0}), job(8), tmp_path)
    assert result["latency_ms"] == pytest.approx(2.0 * 1.1, rel=0.02)  # arch 8: 1 + (8 % 7) / 10
    assert len(result["raw_ms"]) == 20 and result["stats"]["groups"] == 2
    assert result["versions"] == {"debug": "1"}


def test_measure_job_classifies_failures(tmp_path: Path) -> None:
    backend = DebugBackend({"fail_archs": {"5": "compile"}, "raise_archs": [6]})
    with pytest.raises(BackendError) as exc:
        measure_job(backend, job(5), tmp_path)
    assert exc.value.error_class == ErrorClass.COMPILE
    with pytest.raises(BackendError) as exc:
        measure_job(backend, job(6, arch_str=Arch.from_index(6).arch_str), tmp_path)
    assert exc.value.error_class == ErrorClass.RUNTIME and "scripted runtime error" in exc.value.message
    assert measure_job(backend, job(5, attempt=2), tmp_path)["latency_ms"] > 0  # misbehaves on attempt 1 only
    with pytest.raises(BackendError) as exc:
        measure_job(backend, job(5, runtime="litert"), tmp_path)
    assert exc.value.error_class == ErrorClass.UNSUPPORTED and "asks for litert:fp32" in exc.value.message


def test_parse_hook_is_optional() -> None:
    with pytest.raises(NotImplementedError, match="does not parse tool output"):
        DebugBackend().parse("whatever")
    assert issubclass(DebugBackend, Backend)


def test_artifact_cache_round_trip_and_atomic_writes(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "artifacts")
    assert cache.get("abc123", "int8", ".tflite") is None
    path = cache.put("abc123", "int8", ".tflite", b"model")
    assert path.name == "abc123_int8.tflite" and cache.get("abc123", "int8", ".tflite") == b"model"
    assert cache.get("abc123", "fp32", ".tflite") is None  # precision is part of the key
    assert [p.name for p in path.parent.iterdir()] == ["abc123_int8.tflite"]  # no temporary left
    with pytest.raises(ValueError, match="bad cache key"):
        cache.path("../etc", "fp32", ".x")
