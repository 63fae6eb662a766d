"""Desktop CPU, LiteRT: the Keras model converted to ``.tflite`` (fp32, fp16 or int8) and run by the
LiteRT interpreter (``ai_edge_litert``, falling back to ``tflite_runtime``; see latbench.runtimes).

Converted models are cached under ``<workdir>/artifacts`` by canonical graph key and precision, so
equivalent cells and retries convert once. Option ``num_threads`` (int) sets the interpreter threads.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eagle_agent.backends import Backend, CheckResult, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._artifacts import model_artifact
from eagle_agent.backends._nb201 import framework_versions, load_keras_builder, time_runner
from eagle_agent.detect import cpu_model
from latbench.protocol import ProtocolParams, ProtocolResult
from latbench.runtimes import runtime_versions


class CpuLiteRTBackend(Backend):
    name = "cpu_litert"
    runtime = "litert"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        value = self.options.get("num_threads")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"backend option num_threads must be a positive integer, got {value!r}")
        self.num_threads: int | None = value

    def check(self) -> CheckResult:
        versions = runtime_versions()
        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        for module in ("ai_edge_litert", "tflite_runtime"):
            if importlib.util.find_spec(module) is not None:
                found["litert"] = f"{module} {versions.get('litert') or ''}".strip()
                break
        else:
            missing["litert"] = "no LiteRT interpreter: pip install ai-edge-litert (or tflite-runtime)"
        if importlib.util.find_spec("tensorflow") is None:
            missing["tensorflow"] = "needed to convert models: pip install 'eagle-latbench[agent]'"
        else:
            found["tensorflow"] = versions.get("tensorflow") or "installed"
        return CheckResult(found, missing)

    def hardware(self) -> str:
        return cpu_model()

    def load(self) -> None:
        load_keras_builder()
        import latbench.models.export  # noqa: F401

    def versions(self) -> dict[str, str]:
        return framework_versions(litert=True)

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        model = model_artifact(job, workdir, f"tflite_{job.precision}")
        with stage(ErrorClass.RUNTIME):
            from latbench.measure import make_runner

            runner = make_runner("litert", tflite=model.data, num_threads=self.num_threads)
        return model.prepared(job, runner)

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        return time_runner(prepared.artifact, params)

    def cleanup(self, prepared: Prepared) -> None:
        prepared.artifact = None
