"""Desktop GPU, PyTorch: NB201 built in PyTorch from the same pruned cell (:mod:`latbench.models.torch_nb201`;
the same learnable parameter count as the Keras model), in eval mode under ``torch.inference_mode``.

A timed run copies the input to the device, runs the network, copies the output back and calls
``torch.cuda.synchronize()``: the protocol's clock (around the whole run) stops only once the GPU is
done. fp16 runs the network and its input in half precision (``model.half()``).

Options: ``device`` (``cuda``, or ``cpu`` to run the same code path without a GPU, as the tests do),
``gpu_index`` (0), ``cudnn_benchmark`` (true: cuDNN picks its fastest kernels during the warm-up runs).
``check`` reads torch's build (CUDA or not) from its files without importing it, and asks
``nvidia-smi`` for the GPU and driver.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from eagle_agent.backends import CheckResult, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._gpu import NvidiaGpuBackend
from eagle_agent.backends._nb201 import job_cell
from eagle_agent.backends.tools import Options
from latbench.measure import INPUT_SHAPE
from latbench.protocol import ProtocolParams, ProtocolResult, time_callable


def torch_cuda_build() -> str | None:
    """The CUDA version torch was built for ("" for a CPU build), read from ``torch/version.py``;
    None when torch is not installed."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return ""
    return cuda_from_version_file(text)


def cuda_from_version_file(text: str) -> str:
    """``cuda: Optional[str] = '12.1'`` -> "12.1"; a CPU build's ``= None`` -> ""."""
    match = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return match.group(1) if match else ""


def nchw_input_factory(seed: int = 0) -> Callable[[], np.ndarray]:
    """Fresh random batch-1 inputs, channels-first (the PyTorch layout), float32."""
    rng = np.random.default_rng(seed)
    h, w, c = INPUT_SHAPE

    def make_input() -> np.ndarray:
        return rng.standard_normal((1, c, h, w), dtype=np.float32)

    return make_input


class TorchGpuBackend(NvidiaGpuBackend):
    name = "torch_gpu"
    runtime = "torch"
    precisions = ("fp32", "fp16")

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        opts = Options(self.name, self.options, ("device", "gpu_index", "cudnn_benchmark"))
        self.device = opts.text("device", "cuda", choices=("cuda", "cpu"))
        self.gpu_index = opts.integer("gpu_index", 0, minimum=0)
        self.cudnn_benchmark = opts.flag("cudnn_benchmark", True)

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.gpu_index}" if self.device == "cuda" else "cpu"

    def check(self) -> CheckResult:
        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        cuda = torch_cuda_build()
        if cuda is None:
            missing["torch"] = "not installed: pip install 'eagle-latbench[torch]' (a CUDA build for GPUs)"
            return CheckResult(found, missing)
        found["torch"] = metadata.version("torch")
        if self.device == "cuda":
            if not cuda:
                missing["torch"] = f"torch {found.pop('torch')} is a CPU build: install a CUDA build of torch"
            else:
                found["torch_cuda"] = cuda
        return self._check_device(found, missing)

    def load(self) -> None:
        import torch

        import latbench.models.torch_nb201  # noqa: F401

        if self.device == "cuda":
            if not torch.cuda.is_available() or torch.cuda.device_count() <= self.gpu_index:
                raise RuntimeError(
                    f"torch sees {torch.cuda.device_count()} CUDA device(s), gpu_index is {self.gpu_index} "
                    f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})"
                )
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
            self._gpu_name = torch.cuda.get_device_name(self.gpu_index)

    def versions(self) -> dict[str, str]:
        import torch

        out = {"torch": torch.__version__, "numpy": np.__version__, "device": self.torch_device}
        if self.device == "cuda":
            out["cuda_version"] = str(torch.version.cuda)
            out["cudnn_version"] = str(torch.backends.cudnn.version())
            if self._driver:
                out["driver"] = self._driver
        return out

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        import time

        import torch

        from latbench.models.torch_nb201 import build_nb201_torch

        self.ensure_supported(job)
        cell = job_cell(job)
        dtype = torch.float16 if job.precision == "fp16" else torch.float32
        with stage(ErrorClass.BUILD):
            start = time.perf_counter()
            model = build_nb201_torch(cell, input_hw=INPUT_SHAPE[0], in_channels=INPUT_SHAPE[2])
            model = model.to(device=self.torch_device, dtype=dtype).eval()
            build_s = time.perf_counter() - start
        return Prepared(
            job, artifact=self._runner(model, dtype), build_s=build_s, info={"graph_key": cell.canonical_key}
        )

    def _runner(self, model: Any, dtype: Any) -> Callable[[np.ndarray], np.ndarray]:
        import torch

        device = torch.device(self.torch_device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda _d=None: None)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                out = model(torch.from_numpy(x).to(device=device, dtype=dtype))
                host = out.float().cpu().numpy()
            sync(device)
            return host

        return run

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        with stage(ErrorClass.RUNTIME):
            return time_callable(prepared.artifact, nchw_input_factory(), params)

    def cleanup(self, prepared: Prepared) -> None:
        prepared.artifact = None
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()
