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

from eagle_agent.backends import CheckResult, JobSpec, Prepared
from eagle_agent.backends._gpu import NvidiaGpuBackend
from eagle_agent.backends._nb201 import framework_versions, load_keras_builder, prepare_tf_runner, time_runner
from eagle_agent.backends.tools import Options
from latbench.protocol import ProtocolParams, ProtocolResult
from latbench.runtimes import runtime_versions


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


class GpuTfBackend(NvidiaGpuBackend):
    name = "gpu_tf"
    runtime = "tf"
    precisions = ("fp32",)

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        opts = Options(self.name, self.options, ("device", "gpu_index", "memory_growth"))
        self.device = opts.text("device", "gpu", choices=("gpu", "cpu"))
        self.gpu_index = opts.integer("gpu_index", 0, minimum=0)
        self.memory_growth = opts.flag("memory_growth", True)

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
        if self.device == "gpu" and _installed("tensorflow-cpu") and not _installed("tensorflow"):
            missing["tensorflow"] = "tensorflow-cpu sees no GPU: pip install 'tensorflow[and-cuda]' instead"
        return self._check_device(found, missing)

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
        out = framework_versions()
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
        with tf.device(self.tf_device):  # the runner is traced inside, so its ops are placed on the device
            return prepare_tf_runner(job)

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        import tensorflow as tf

        with tf.device(self.tf_device):
            return time_runner(prepared.artifact, params)

    def cleanup(self, prepared: Prepared) -> None:
        from latbench.measure import clear_session

        prepared.artifact = None
        clear_session()
