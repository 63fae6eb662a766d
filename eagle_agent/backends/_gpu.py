"""What the desktop NVIDIA GPU backends (TensorFlow, PyTorch) share: GPU ``gpu_index`` as ``nvidia-smi``
lists it (name, memory, driver) in ``check``, and the hardware name; ``device = "cpu"`` runs the same
code path on the CPU (as the tests do)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eagle_agent.backends import Backend, BackendError, CheckResult
from eagle_agent.backends.tools import nvidia_gpus
from eagle_agent.detect import cpu_model


class NvidiaGpuBackend(Backend):
    """A backend on one NVIDIA GPU; subclasses set ``device`` and ``gpu_index`` from their options."""

    device: str  # "cpu", or the subclass's name for the GPU path
    gpu_index: int

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        self._gpu_name = ""
        self._driver = ""

    def _check_device(self, found: dict[str, str], missing: dict[str, str]) -> CheckResult:
        """Finish ``check``: the CPU model on the CPU path, else the GPU from ``nvidia-smi`` (whose name
        and driver are kept for ``hardware`` and ``versions``)."""
        if self.device == "cpu":
            found["device"] = f"cpu ({cpu_model()})"
            return CheckResult(found, missing)
        try:
            gpus = nvidia_gpus()
        except BackendError as exc:
            missing["gpu"] = exc.message
            return CheckResult(found, missing)
        gpu = next((g for g in gpus if g.index == self.gpu_index), None)
        if gpu is None:
            missing["gpu"] = f"nvidia-smi lists {len(gpus)} GPU(s); gpu_index {self.gpu_index} is not one of them"
        else:
            self._gpu_name, self._driver = gpu.name, gpu.driver
            found["gpu"] = f"{gpu.name} ({gpu.memory_mib} MiB)"
            found["driver"] = gpu.driver
        return CheckResult(found, missing)

    def hardware(self) -> str:
        if self.device == "cpu":
            return cpu_model()
        if not self._gpu_name:
            self.check()
        return self._gpu_name or f"GPU {self.gpu_index}"
