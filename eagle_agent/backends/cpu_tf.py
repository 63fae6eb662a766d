"""Desktop CPU, TensorFlow: the Keras model run through a traced ``tf.function`` (fp32)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from eagle_agent.backends import Backend, CheckResult, JobSpec, Prepared
from eagle_agent.backends._nb201 import framework_versions, load_keras_builder, prepare_tf_runner, time_runner
from eagle_agent.detect import cpu_model
from latbench.protocol import ProtocolParams, ProtocolResult
from latbench.runtimes import runtime_versions


class CpuTfBackend(Backend):
    name = "cpu_tf"
    runtime = "tf"
    precisions = ("fp32",)

    def check(self) -> CheckResult:
        versions = runtime_versions()
        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        for module in ("tensorflow", "keras"):
            if importlib.util.find_spec(module) is None:
                missing[module] = "not installed: pip install 'eagle-latbench[agent]'"
            else:
                found[module] = versions.get(module) or "installed"
        return CheckResult(found, missing)

    def hardware(self) -> str:
        return cpu_model()

    def load(self) -> None:
        load_keras_builder()

    def versions(self) -> dict[str, str]:
        return framework_versions()

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        return prepare_tf_runner(job)

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        return time_runner(prepared.artifact, params)

    def cleanup(self, prepared: Prepared) -> None:
        from latbench.measure import clear_session

        prepared.artifact = None
        clear_session()
