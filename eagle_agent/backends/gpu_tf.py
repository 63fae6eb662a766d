"""Desktop GPU, TensorFlow: the Keras model on a visible GPU, run through a traced ``tf.function`` (fp32).

Each timed run copies the input to the GPU, runs the graph and copies the output back to host memory
(``.numpy()``), which waits for the GPU to finish: the protocol's clock stops only when the device is
done, and what it times is the whole inference, as on the CPU backends.

Options: ``device`` (``gpu``, or ``cpu`` to run the same code path without a GPU, as the tests do),
``gpu_index`` (0), ``memory_growth`` (true: TensorFlow takes GPU memory as needed, not all of it).
``check`` uses ``nvidia-smi`` for the GPU model and driver (cheap, nothing imported); ``load`` then
makes sure TensorFlow itself sees the GPU (the ``tensorflow-cpu`` wheel never does).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from eagle_agent.backends import Backend, BackendError, CheckResult, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._nb201 import build_keras, job_cell, load_keras_builder
from eagle_agent.backends.tools import Options, nvidia_gpus
from eagle_agent.detect import cpu_model
from latbench.protocol import ProtocolParams, ProtocolResult, time_callable
from latbench.runtimes import runtime_versions


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


class GpuTfBackend(Backend):
    name = "gpu_tf"
    runtime = "tf"
    precisions = ("fp32",)

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        opts = Options(self.name, self.options, ("device", "gpu_index", "memory_growth"))
        self.device = opts.text("device", "gpu", choices=("gpu", "cpu"))
        self.gpu_index = opts.integer("gpu_index", 0, minimum=0)
        self.memory_growth = opts.flag("memory_growth", True)
        self._gpu_name = ""
        self._driver = ""

    @property
    def tf_device(self) -> str:
        return f"/GPU:{self.gpu_index}" if self.device == "gpu" else "/CPU:0"

    def check(self) -> CheckResult:
        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        if importlib.util.find_spec("tensorflow") is None:
            missing["tensorflow"] = "not installed: pip install 'tensorflow[and-cuda]'"
        else:
            found["tensorflow"] = runtime_versions().get("tensorflow") or "installed"
        if self.device == "cpu":
            found["device"] = f"cpu ({cpu_model()})"
            return CheckResult(found, missing)
        if _installed("tensorflow-cpu") and not _installed("tensorflow"):
            missing["tensorflow"] = "tensorflow-cpu sees no GPU: pip install 'tensorflow[and-cuda]' instead"
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

    def load(self) -> None:
        load_keras_builder()
        import tensorflow as tf

        if self.device == "cpu":
            return
        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) <= self.gpu_index:
            raise RuntimeError(
                f"TensorFlow sees {len(gpus)} GPU(s), gpu_index is {self.gpu_index}: install tensorflow[and-cuda] "
                "and check CUDA_VISIBLE_DEVICES"
            )
        if self.memory_growth:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpus[self.gpu_index])
        self._gpu_name = str(details.get("device_name", "")) or self._gpu_name

    def versions(self) -> dict[str, str]:
        out = {k: v for k, v in runtime_versions().items() if v and k != "litert"}
        out["device"] = self.tf_device
        if self.device == "gpu":
            import tensorflow as tf

            build = tf.sysconfig.get_build_info()
            for key in ("cuda_version", "cudnn_version"):
                if build.get(key):
                    out[key] = str(build[key])
            if self._driver:
                out["driver"] = self._driver
        return out

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        import tensorflow as tf

        self.ensure_supported(job)
        cell = job_cell(job)
        with tf.device(self.tf_device):
            model, build_s = build_keras(cell)
            with stage(ErrorClass.BUILD):
                from latbench.measure import make_runner

                runner = make_runner("tf", model=model)  # traced here, so its ops are placed on the device
        return Prepared(job, artifact=runner, build_s=build_s, info={"graph_key": cell.canonical_key})

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        import tensorflow as tf

        from latbench.measure import input_factory

        with stage(ErrorClass.RUNTIME), tf.device(self.tf_device):
            return time_callable(prepared.artifact, input_factory(), params)

    def cleanup(self, prepared: Prepared) -> None:
        from latbench.measure import clear_session

        prepared.artifact = None
        clear_session()
