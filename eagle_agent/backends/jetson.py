"""NVIDIA Jetson (fp32 / fp16) through TensorRT's ``trtexec``, on this machine or on a board over SSH;
and TF-TRT in-process, for boards where TensorFlow runs.

``jetson_trt`` (runtime ``tensorrt``), one job:

1. the Keras model exported to ONNX with a fixed ``1x32x32x3`` input (cached by graph key);
2. a fresh work folder on the target (``mktemp -d`` under ``remote_dir``) and the ``.onnx`` copied there
   (``scp`` with key authentication; a plain copy when ``host`` is empty);
3. ``trtexec --onnx=model.onnx [--fp16] --iterations=W+N --warmUp=0 --duration=0 --avgRuns=G
   --exportTimes=times.json``: trtexec builds the engine and runs exactly W+N inferences (``--iterations``
   is a minimum and ``--duration`` another one, so the duration is set to 0 and trtexec's own warm-up
   to 0 ms; the protocol's W warm-up runs are the first W entries of the trace, dropped here);
4. ``times.json`` read back and parsed (:func:`parse_times`); the protocol is applied to the raw
   per-inference times by the worker;
5. the work folder removed.

The ``--exportTimes`` file is a JSON list with one object per inference. TensorRT 8.2+ (sampleReporting
``exportJSONTrace``) writes ``startEnqMs, endEnqMs, startH2dMs, endH2dMs, startComputeMs, endComputeMs,
startD2hMs, endD2hMs, h2dMs, computeMs, d2hMs, latencyMs, endToEndMs``; TensorRT 7 wrote ``startInMs,
endInMs, ..., inMs, computeMs, outMs, latencyMs, endToEndMs``. Both have ``latencyMs`` (H2D + compute +
D2H of one query: what the protocol times here; option ``metric = "compute"`` takes ``computeMs``).
The file holds every inference, warm-up included, in order.

trtexec failures: an engine that cannot be built (parser or builder errors) is ``compile``; an ONNX op
TensorRT has no importer for is ``unsupported``; anything else is ``runtime``; ssh that cannot reach the
board is ``runtime`` (retried). Options: ``host`` ("" = this machine), ``user``, ``port``, ``key``,
``ssh``, ``scp``, ``trtexec`` (default: ``trtexec`` on the target's PATH, else JetPack's
``/usr/src/tensorrt/bin/trtexec``), ``remote_dir`` (``/tmp``), ``metric``, ``connect_timeout_s`` (10),
``copy_timeout_s`` (120), ``trtexec_timeout_s`` (900: building an engine on a Nano takes minutes),
``hardware`` (what to call the board).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from eagle_agent.backends import Backend, BackendError, CheckResult, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._artifacts import job_folder, model_artifact, remove_job_folder
from eagle_agent.backends._nb201 import build_keras, framework_versions, job_cell, load_keras_builder, time_runner
from eagle_agent.backends.tools import Classifier, Options, Shell, SshShell, find_tool, tail
from latbench.protocol import ProtocolParams, ProtocolResult
from latbench.runtimes import runtime_versions

JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
TIMES_FILE = "times.json"
METRICS = {"latency": "latencyMs", "compute": "computeMs"}

TRTEXEC_FAILURES = Classifier.of(
    (r"No importer registered for op|Unsupported ONNX data type", ErrorClass.UNSUPPORTED),
    (
        r"Failed to parse onnx file|Engine could not be created|Network must have at least one output|"
        r"Error Code \d+: Internal Error|Error\[\d+\]|Building engine failed",
        ErrorClass.COMPILE,
    ),
)
_TRT_VERSION_RE = re.compile(r"\[TensorRT v(\d+)\]")


class TimesFormatError(ValueError):
    """The exportTimes file is not what trtexec writes."""


def parse_times(text: str, metric: str = "latency") -> list[float]:
    """Per-inference times (ms, in order) from trtexec's ``--exportTimes`` JSON."""
    key = METRICS.get(metric)
    if key is None:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TimesFormatError(f"the times file is not JSON ({exc}): {tail(text, 200)}") from None
    if not isinstance(entries, list):
        raise TimesFormatError(f"the times file must be a JSON list, got {type(entries).__name__}")
    times: list[float] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TimesFormatError(f"entry {i} of the times file is not an object: {entry!r}")
        if key not in entry:
            if set(entry) == {"count"}:  # a header some writers put first; not a timing
                continue
            raise TimesFormatError(f"entry {i} of the times file has no {key}: {sorted(entry)}")
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise TimesFormatError(f"entry {i}: {key} = {value!r} is not a time in ms")
        times.append(float(value))
    if not times:
        raise TimesFormatError("the times file holds no inferences")
    return times


class JetsonTrtBackend(Backend):
    name = "jetson_trt"
    runtime = "tensorrt"
    precisions = ("fp32", "fp16")
    OPTIONS = (
        "host", "user", "port", "key", "ssh", "scp", "trtexec", "remote_dir", "metric",
        "connect_timeout_s", "copy_timeout_s", "trtexec_timeout_s", "hardware",
    )  # fmt: skip

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        opts = Options(self.name, self.options, self.OPTIONS)
        self.host = opts.text("host", "")
        self.metric = opts.text("metric", "latency", choices=tuple(METRICS))
        self.trtexec = opts.text("trtexec", "")
        self.remote_dir = opts.text("remote_dir", "/tmp")
        if not self.remote_dir.startswith("/"):
            raise ValueError(f"backend {self.name}: remote_dir must be an absolute path, got {self.remote_dir!r}")
        self.copy_timeout_s = opts.seconds("copy_timeout_s", 120.0)
        self.trtexec_timeout_s = opts.seconds("trtexec_timeout_s", 900.0)
        self.board = opts.text("hardware", "NVIDIA Jetson Nano")
        key = opts.text("key", "")
        self.shell: Shell = (
            SshShell(
                host=self.host,
                user=opts.text("user", ""),
                port=opts.integer("port", 0, minimum=0),
                key=str(Path(key).expanduser()) if key else "",
                ssh=opts.text("ssh", "ssh"),
                scp=opts.text("scp", "scp"),
                connect_timeout_s=opts.integer("connect_timeout_s", 10, minimum=1),
            )
            if self.host
            else Shell()
        )
        if not self.host:
            for unused in ("user", "port", "key", "ssh", "scp"):
                if unused in self.options:
                    raise ValueError(f"backend {self.name}: option {unused} needs host (the board to ssh to)")
        self._trt_version = ""

    # -- checks and facts ---------------------------------------------------------------------------
    def _trtexec_command(self) -> str:
        if self.trtexec:
            return shlex.quote(self.trtexec)
        return f'"$(command -v trtexec || echo {JETPACK_TRTEXEC})"'

    def check(self) -> CheckResult:
        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        for module, what in (("tensorflow", "tensorflow"), ("tf2onnx", "tf2onnx")):
            if importlib.util.find_spec(module) is None:
                missing[what] = "needed to export ONNX: pip install 'eagle-latbench[jetson]'"
        if isinstance(self.shell, SshShell):
            for tool in (self.shell.ssh, self.shell.scp):
                path = find_tool(Path(tool).name, tool)
                if path is None:
                    missing[Path(tool).name] = f"{tool} not found: install openssh-client"
            if self.shell.key and not Path(self.shell.key).is_file():
                missing["ssh key"] = f"{self.shell.key} does not exist (option key)"
            if missing:
                return CheckResult(found, missing)
        probe = f'T={self._trtexec_command()}; test -x "$T" && echo "$T"'
        try:
            result = self.shell.run(probe, timeout_s=30, error_class=ErrorClass.RUNTIME, check=False)
        except BackendError as exc:
            missing["board"] = exc.message
            return CheckResult(found, missing)
        if result.returncode == 0 and result.stdout.strip():
            found["trtexec"] = f"{result.stdout.strip().splitlines()[-1]} on {self.shell.description}"
        else:
            missing["trtexec"] = (
                f"no trtexec on {self.shell.description} (PATH or {JETPACK_TRTEXEC}): install TensorRT "
                "(JetPack) or set the option trtexec"
            )
        return CheckResult(found, missing)

    def hardware(self) -> str:
        return f"{self.board} ({self.shell.description})"

    def load(self) -> None:
        load_keras_builder()
        import latbench.models.onnx_export  # noqa: F401

    def versions(self) -> dict[str, str]:
        out = framework_versions()
        for dist in ("tf2onnx", "onnx"):
            with contextlib.suppress(metadata.PackageNotFoundError):
                out[dist] = metadata.version(dist)
        if self._trt_version:
            out["tensorrt"] = self._trt_version
        return out

    def parse(self, output: str) -> list[float]:
        return parse_times(output, self.metric)

    # -- a job --------------------------------------------------------------------------------------
    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        artifact = model_artifact(job, workdir, "onnx")
        local = job_folder(workdir, "trt", job)
        prepared = artifact.prepared(job, local=str(local))
        try:
            (local / "model.onnx").write_bytes(artifact.data)
            remote = self.shell.make_temp_dir(self.remote_dir, "eagle-trt-", timeout_s=self.copy_timeout_s)
            prepared.info["remote"] = remote
            self.shell.push(local / "model.onnx", f"{remote}/model.onnx", timeout_s=self.copy_timeout_s)
        except BaseException:
            self.cleanup(prepared)
            raise
        return prepared

    def trtexec_command(self, remote: str, precision: str, params: ProtocolParams) -> str:
        args = [
            f"--onnx={remote}/model.onnx",
            *(["--fp16"] if precision == "fp16" else []),
            f"--iterations={params.warmup + params.runs}",
            "--warmUp=0",
            "--duration=0",
            f"--avgRuns={params.group_size}",
            f"--exportTimes={remote}/{TIMES_FILE}",
        ]
        return f"cd {shlex.quote(remote)} && {self._trtexec_command()} " + " ".join(shlex.quote(a) for a in args)

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        remote = prepared.info["remote"]
        result = self.shell.run(
            self.trtexec_command(remote, prepared.job.precision, params),
            timeout_s=self.trtexec_timeout_s + min(30.0, self.trtexec_timeout_s),  # backstop for ssh itself
            device_timeout_s=self.trtexec_timeout_s,  # trtexec is killed on the board, not only the ssh client
            error_class=ErrorClass.RUNTIME,
            what="trtexec",
            classify=TRTEXEC_FAILURES,
        )
        version = _TRT_VERSION_RE.search(result.output)
        if version:
            self._trt_version = version.group(1)
        local = Path(prepared.info["local"]) / TIMES_FILE
        self.shell.pull(f"{remote}/{TIMES_FILE}", local, timeout_s=self.copy_timeout_s)
        try:
            times = self.parse(local.read_text(errors="replace"))
        except TimesFormatError as exc:
            raise BackendError(ErrorClass.RUNTIME, f"trtexec's {TIMES_FILE}: {exc}") from exc
        expected = params.warmup + params.runs
        if len(times) < expected:
            raise BackendError(
                ErrorClass.RUNTIME,
                f"trtexec timed {len(times)} inferences, {expected} were asked for (--iterations={expected})",
            )
        return times[params.warmup : params.warmup + params.runs]

    def cleanup(self, prepared: Prepared) -> None:
        remote = prepared.info.pop("remote", None)
        try:
            if remote:
                self.shell.remove_tree(remote, timeout_s=self.copy_timeout_s)
        finally:
            remove_job_folder(prepared, "local")


class JetsonTfTrtBackend(Backend):
    """TF-TRT in the agent's own process, for a board where TensorFlow (with TensorRT) runs.

    The Keras model is saved as a SavedModel, converted by ``TrtGraphConverterV2`` at the precision,
    its engines built for the 1x32x32x3 input, and the converted function timed with the protocol (its
    output copied to host memory, which waits for the GPU). Options: ``workspace_mb`` (1024).
    Not exercised here: this machine's TensorFlow has no TensorRT; ``load`` says so.
    """

    name = "jetson_tftrt"
    runtime = "tftrt"
    precisions = ("fp32", "fp16")

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        opts = Options(self.name, self.options, ("workspace_mb", "hardware"))
        self.workspace_mb = opts.integer("workspace_mb", 1024, minimum=64)
        self.board = opts.text("hardware", "NVIDIA Jetson Nano")

    def check(self) -> CheckResult:
        import ctypes.util

        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        if importlib.util.find_spec("tensorflow") is None:
            missing["tensorflow"] = "TF-TRT needs TensorFlow built with TensorRT (NVIDIA's JetPack wheels)"
        else:
            found["tensorflow"] = runtime_versions().get("tensorflow") or "installed"
        if ctypes.util.find_library("nvinfer"):
            found["tensorrt"] = "libnvinfer"
        else:
            missing["tensorrt"] = "libnvinfer not in the linker cache: install TensorRT (JetPack)"
        return CheckResult(found, missing)

    def hardware(self) -> str:
        return self.board

    def load(self) -> None:
        load_keras_builder()
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils

        if not _pywrap_py_utils.is_tensorrt_enabled():
            raise RuntimeError("this TensorFlow build has no TensorRT support (TF-TRT); use NVIDIA's wheels")

    def versions(self) -> dict[str, str]:
        return framework_versions()

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        cell = job_cell(job)
        model, build_s = build_keras(cell)
        tmp = job_folder(workdir, "tftrt", job)
        prepared = Prepared(
            job, artifact=None, build_s=build_s, info={"graph_key": cell.canonical_key, "tmp": str(tmp)}
        )
        try:
            with stage(ErrorClass.COMPILE):
                prepared.artifact = self._convert(model, job.precision, tmp)
        except BaseException:
            self.cleanup(prepared)
            raise
        return prepared

    def _convert(self, model: Any, precision: str, tmp: Path) -> Any:
        import numpy as np
        import tensorflow as tf
        from tensorflow.python.compiler.tensorrt import trt_convert as trt

        from latbench.models.export import export_saved_model

        export_saved_model(model, tmp / "saved")
        converter = trt.TrtGraphConverterV2(
            input_saved_model_dir=str(tmp / "saved"),
            precision_mode=trt.TrtPrecisionMode.FP16 if precision == "fp16" else trt.TrtPrecisionMode.FP32,
            max_workspace_size_bytes=self.workspace_mb << 20,
        )
        converter.convert()
        shape = (1, *tuple(int(d) for d in model.input_shape[1:]))
        converter.build(input_fn=lambda: [np.zeros(shape, np.float32)])
        converter.save(str(tmp / "trt"))
        loaded = tf.saved_model.load(str(tmp / "trt"))
        fn = loaded.signatures["serving_default"]

        def run(x: Any) -> Any:
            out = fn(tf.constant(x))
            return next(iter(out.values())).numpy()

        return run

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        return time_runner(prepared.artifact, params)

    def cleanup(self, prepared: Prepared) -> None:
        prepared.artifact = None
        remove_job_folder(prepared, "tmp")
