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

from eagle_agent.backends import ArtifactCache, Backend, CheckResult, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._nb201 import build_keras, job_cell, load_keras_builder
from eagle_agent.detect import cpu_model
from latbench.protocol import ProtocolParams, ProtocolResult, time_callable
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
        return {k: v for k, v in runtime_versions().items() if v}

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        cell = job_cell(job)
        cache = ArtifactCache(Path(workdir) / "artifacts")
        key = cell.canonical_key
        data = cache.get(key, job.precision, ".tflite")
        build_s = convert_s = 0.0
        cached = data is not None
        if data is None:
            model, build_s = build_keras(cell)
            with stage(ErrorClass.CONVERT):
                from latbench.measure import clear_session, convert_model

                data, convert_s = convert_model(model, job.precision)
                del model
                clear_session()
            cache.put(key, job.precision, ".tflite", data)
        with stage(ErrorClass.RUNTIME):
            from latbench.measure import make_runner

            runner = make_runner("litert", tflite=data, num_threads=self.num_threads)
        return Prepared(
            job, artifact=runner, build_s=build_s, convert_s=convert_s, cached=cached, info={"graph_key": key}
        )

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        from latbench.measure import input_factory

        with stage(ErrorClass.RUNTIME):
            return time_callable(prepared.artifact, input_factory(), params)

    def cleanup(self, prepared: Prepared) -> None:
        prepared.artifact = None
