"""The desktop-CPU backends on real TensorFlow / LiteRT models (few runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eagle_agent.backends import BackendError, ErrorClass
from eagle_agent.backends.cpu_litert import CpuLiteRTBackend
from eagle_agent.backends.cpu_tf import CpuTfBackend
from eagle_agent.worker import measure_job
from latbench.graph import nb201_cell
from latbench.nb201 import Arch

from .test_backends import job

INVALID = Arch.from_op_code("000000")  # every edge "none": nothing reaches the output


def _equivalent_pair() -> tuple[int, int]:
    """Two different indices with the same pruned graph (they share a converted model)."""
    seen: dict[str, int] = {}
    for index in range(200):
        cell = nb201_cell(Arch.from_index(index))
        if not cell.valid:
            continue
        if cell.canonical_key in seen:
            return seen[cell.canonical_key], index
        seen[cell.canonical_key] = index
    raise AssertionError("no equivalent cells among the first 200 indices")


@pytest.mark.slow
def test_tf_backend_measures_a_model(tmp_path: Path) -> None:
    backend = CpuTfBackend()
    backend.load()
    result = measure_job(backend, job(0, runs=20), tmp_path)
    assert 0 < result["latency_ms"] < 1000
    assert len(result["raw_ms"]) == 20 and result["stats"]["runs"] == 20
    assert result["build_s"] > 0 and result["convert_s"] == 0
    assert result["versions"]["tensorflow"] and "litert" not in result["versions"]


@pytest.mark.slow
def test_litert_backend_caches_converted_models_by_graph_and_precision(tmp_path: Path) -> None:
    first, second = _equivalent_pair()
    backend = CpuLiteRTBackend(precisions=["fp32", "int8"])
    spec = {"runtime": "litert", "runs": 10}
    a = measure_job(backend, job(first, precision="int8", arch_str=Arch.from_index(first).arch_str, **spec), tmp_path)
    assert not a["cached"] and a["convert_s"] > 0 and a["latency_ms"] > 0
    b = measure_job(backend, job(second, precision="int8", arch_str=Arch.from_index(second).arch_str, **spec), tmp_path)
    assert b["cached"] and b["convert_s"] == 0 and b["build_s"] == 0  # same graph: no rebuild, no conversion
    key = nb201_cell(Arch.from_index(first)).canonical_key
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [f"{key}_int8.tflite"]
    assert b["versions"]["litert"]


def test_invalid_cells_are_unsupported(tmp_path: Path) -> None:
    spec = job(INVALID.index, arch_str=INVALID.arch_str)
    with pytest.raises(BackendError, match="invalid") as exc:
        measure_job(CpuTfBackend(), spec, tmp_path)
    assert exc.value.error_class == ErrorClass.UNSUPPORTED
