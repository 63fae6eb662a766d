"""Desktop CPU, TensorFlow: the Keras model run through a traced ``tf.function`` (fp32)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from eagle_agent.backends import Backend, CheckResult, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._nb201 import build_keras, job_cell, load_keras_builder
from eagle_agent.detect import cpu_model
from latbench.protocol import ProtocolParams, ProtocolResult, time_callable
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
        return {k: v for k, v in runtime_versions().items() if v and k != "litert"}

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        cell = job_cell(job)
        model, build_s = build_keras(cell)
        with stage(ErrorClass.BUILD):  # tracing the tf.function is part of making the model runnable
            from latbench.measure import make_runner

            runner = make_runner("tf", model=model)
        return Prepared(job, artifact=runner, build_s=build_s, info={"graph_key": cell.canonical_key})

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        from latbench.measure import input_factory

        with stage(ErrorClass.RUNTIME):
            return time_callable(prepared.artifact, input_factory(), params)

    def cleanup(self, prepared: Prepared) -> None:
        from latbench.measure import clear_session

        prepared.artifact = None
        clear_session()
