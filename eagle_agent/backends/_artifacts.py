"""What the converting backends share: the job's model as a file (TFLite at a precision, or ONNX), cached
by canonical graph key under ``<workdir>/artifacts``; a per-job scratch folder; and a protocol result that
carries facts about the device run (``device_info`` in the reported statistics, e.g. how many ops the
Edge TPU runs)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from eagle_agent.backends import ArtifactCache, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._nb201 import build_keras, job_cell
from latbench.protocol import ProtocolResult

KINDS = {"tflite_fp32": ".tflite", "tflite_fp16": ".tflite", "tflite_int8": ".tflite", "onnx": ".onnx"}


@dataclass
class ModelArtifact:
    data: bytes
    graph_key: str
    build_s: float = 0.0
    convert_s: float = 0.0
    cached: bool = False

    def prepared(self, job: JobSpec, artifact: Any = None, **info: Any) -> Prepared:
        """A :class:`Prepared` for ``job`` carrying this model's costs and graph key, plus ``info``."""
        return Prepared(
            job,
            artifact=artifact,
            build_s=self.build_s,
            convert_s=self.convert_s,
            cached=self.cached,
            info={"graph_key": self.graph_key, **info},
        )


def model_artifact(job: JobSpec, workdir: Path, kind: str) -> ModelArtifact:
    """The job's model as ``kind`` (``tflite_<precision>`` or ``onnx``), converted once per graph key."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    cell = job_cell(job)
    key = cell.canonical_key
    cache = ArtifactCache(Path(workdir) / "artifacts")
    precision = kind.removeprefix("tflite_") if kind.startswith("tflite_") else "fp32"
    suffix = KINDS[kind]
    data = cache.get(key, precision, suffix)
    if data is not None:
        return ModelArtifact(data, key, cached=True)
    model, build_s = build_keras(cell)
    with stage(ErrorClass.CONVERT):
        import time

        from latbench.measure import clear_session

        start = time.perf_counter()
        if kind == "onnx":
            from latbench.models.onnx_export import to_onnx

            data = to_onnx(model)
        else:
            from latbench.models.export import to_tflite

            data = to_tflite(model, precision)
        convert_s = time.perf_counter() - start
        del model
        clear_session()
    cache.put(key, precision, suffix, data)
    return ModelArtifact(data, key, build_s=build_s, convert_s=convert_s)


@dataclass(frozen=True)
class ResultWithInfo(ProtocolResult):
    """A protocol result whose statistics also carry ``device_info`` (facts about the device run)."""

    info: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, include_raw: bool = False) -> dict[str, Any]:
        out = super().to_dict(include_raw)
        out["device_info"] = dict(self.info)
        return out


def with_info(result: ProtocolResult, info: Mapping[str, Any]) -> ResultWithInfo:
    base = {f.name: getattr(result, f.name) for f in fields(ProtocolResult)}
    return ResultWithInfo(**base, info=dict(info))


def scratch_dir(workdir: Path) -> Path:
    """``<workdir>/scratch``: where per-job temporary folders go (each job removes its own)."""
    path = Path(workdir) / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def job_folder(workdir: Path, tag: str, job: JobSpec) -> Path:
    """A fresh ``<workdir>/scratch/<tag>-<job id>-XXXX`` folder for one job's files."""
    return Path(tempfile.mkdtemp(prefix=f"{tag}-{job.job_id}-", dir=scratch_dir(workdir)))


def remove_job_folder(prepared: Prepared, key: str) -> None:
    """Remove the job folder whose path ``prepared.info[key]`` holds (if any), and forget it."""
    path = prepared.info.pop(key, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
