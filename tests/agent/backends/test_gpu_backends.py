"""Desktop GPU backends (TensorFlow, PyTorch) on the CPU code path here, and their checks against a
fake ``nvidia-smi``. The GPU path itself runs in benchmarks/gpu_check.sh on a machine with a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from eagle_agent.backends import create_backend
from eagle_agent.backends.gpu_tf import GpuTfBackend
from eagle_agent.backends.torch_gpu import TorchGpuBackend, cuda_from_version_file, torch_cuda_build
from eagle_agent.worker import measure_job

from .conftest import FakeTools, make_job

GTX = "NVIDIA GeForce GTX 1080 Ti;535.54.03;11264"


# -- TensorFlow -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tf_backend_measures_on_the_cpu_path(tmp_path: Path) -> None:
    backend = GpuTfBackend({"device": "cpu"})
    assert backend.check().ok
    backend.load()
    result = measure_job(backend, make_job(45, "tf", "fp32", runs=20, warmup=2), tmp_path)
    assert len(result["raw_ms"]) == 20 and 0 < result["latency_ms"] < 1000
    assert result["versions"]["device"] == "/CPU:0" and result["versions"]["tensorflow"]


def test_tf_check_reports_gpu_driver_and_a_cpu_only_wheel(tools: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAGLE_FAKE_GPUS", GTX)
    check = GpuTfBackend().check()
    assert check.found["gpu"] == "NVIDIA GeForce GTX 1080 Ti (11264 MiB)" and check.found["driver"] == "535.54.03"
    assert "tensorflow-cpu sees no GPU" in check.missing["tensorflow"]  # this machine has the CPU wheel
    assert "gpu_index 1 is not one of them" in GpuTfBackend({"gpu_index": 1}).check().missing["gpu"]
    monkeypatch.setenv("EAGLE_FAKE_GPUS", "")
    assert "No devices were found" in GpuTfBackend().check().missing["gpu"]


def test_tf_load_refuses_to_start_without_a_visible_gpu() -> None:
    with pytest.raises(RuntimeError, match="TensorFlow sees 0 GPU"):
        GpuTfBackend().load()


# -- PyTorch --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_backend_measures_on_the_cpu_path(tmp_path: Path, precision: str) -> None:
    backend = create_backend("torch_gpu", {"device": "cpu"}, [precision])
    assert backend.capabilities() == [f"torch:{precision}"] and backend.check().ok
    backend.load()
    result = measure_job(backend, make_job(45, "torch", precision, runs=20, warmup=2), tmp_path)
    assert len(result["raw_ms"]) == 20 and result["latency_ms"] > 0
    assert result["versions"]["device"] == "cpu" and result["versions"]["torch"].startswith("2.")


def test_torch_check_on_a_cpu_build(tools: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAGLE_FAKE_GPUS", GTX)
    assert torch_cuda_build() == ""  # this machine's torch is the CPU build
    check = TorchGpuBackend().check()
    assert "is a CPU build" in check.missing["torch"] and check.found["gpu"].startswith("NVIDIA GeForce GTX 1080 Ti")
    with pytest.raises(RuntimeError, match="torch sees 0 CUDA device"):
        TorchGpuBackend().load()


def test_cuda_version_from_torch_version_file() -> None:
    assert cuda_from_version_file("cuda: Optional[str] = '12.1'\nhip = None\n") == "12.1"
    assert cuda_from_version_file('cuda = "11.8"\n') == "11.8"
    assert cuda_from_version_file("cuda: Optional[str] = None\n") == ""


def test_gpu_options_are_checked() -> None:
    with pytest.raises(ValueError, match="option device must be one of cuda, cpu"):
        TorchGpuBackend({"device": "gpu"})
    with pytest.raises(ValueError, match="option device must be one of gpu, cpu"):
        GpuTfBackend({"device": "cuda"})
    with pytest.raises(ValueError, match="cannot run precision fp16"):
        GpuTfBackend(precisions=["fp16"])
