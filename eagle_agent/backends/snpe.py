"""Snapdragon phones through the Qualcomm Neural Processing SDK (SNPE): Adreno GPU, Hexagon DSP or CPU.

One job, with the phone on adb (``serial`` from the agent config):

1. the model as fp32 TFLite (or ONNX, option ``converter``), converted on this host to a DLC with
   ``snpe-tflite-to-dlc --input_network model.tflite --output_path model.dlc`` (or ``snpe-onnx-to-dlc``);
   for the DSP quantised with ``snpe-dlc-quantize --input_dlc model.dlc --input_list calib.txt
   --output_dlc model_q.dlc`` on random calibration inputs. DLCs are cached by graph key.
2. raw float32 NHWC inputs (one per protocol group, and one for the warm-up runs) and an input list
   with one line per inference: ``warmup + runs`` lines (paper: 10 runs on mobile);
3. a fresh folder on the phone under ``device_dir``; the DLC, inputs and list pushed with ``adb push``;
4. ``snpe-net-run --container model.dlc --input_list inputs.txt --output_dir out --perf_profile P
   --profiling_level basic`` plus ``--use_gpu`` (``--gpu_mode float16`` for fp16) or ``--use_dsp``, run
   from the SDK copy on the phone (``device_snpe_dir``: ``bin/``, ``lib/``, ``dsp/``; LD_LIBRARY_PATH and
   ADSP_LIBRARY_PATH point there);
5. the diagnostic log ``out/SNPEDiag*.log`` pulled and turned into CSV on this host by
   ``snpe-diagview --input_log SNPEDiag_0.log --output diag.csv``; per-inference times read from it
   (:func:`parse_diag_csv`), the warm-up ones dropped;
6. the folder on the phone removed.

The diagview CSV: we read it as Microsoft Olive's SNPE runner does (the message name in the second
column, its value in microseconds in the fourth; ``Avg_Total_Inference_Time`` is the average), and take
each ``Total Inference Time`` row as one inference, in order. A header row, when present, names the
columns (``*name*``, ``*value*``, ``*unit*``). This layout is from public parsers, not from a captured
log of a real phone: the first lab run should confirm it (see deploy/guides/android-snpe.md).

Failures: a converter or quantiser that exits non-zero is ``convert`` (``unsupported`` when it says an
op is not supported); snpe-net-run failing is ``runtime`` (``unsupported`` for an unsupported layer on
the runtime); adb without the device is ``runtime`` (retried); every tool has a timeout.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import os
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eagle_agent.backends import (
    ArtifactCache,
    Backend,
    BackendError,
    CheckResult,
    ErrorClass,
    JobSpec,
    Prepared,
)
from eagle_agent.backends._artifacts import job_folder, model_artifact, remove_job_folder
from eagle_agent.backends._nb201 import framework_versions, load_keras_builder
from eagle_agent.backends.tools import Adb, Classifier, Options, find_tool, require_tool, run_tool, tail
from latbench.protocol import ProtocolParams, ProtocolResult

TARGET_PRECISIONS = {"cpu": ("fp32",), "gpu": ("fp32", "fp16"), "dsp": ("int8",)}
TARGET_FLAGS = {"cpu": [], "gpu": ["--use_gpu"], "dsp": ["--use_dsp"]}
INPUT_SHAPE = (1, 32, 32, 3)
CONVERT_FAILURES = Classifier.of((r"not supported|unsupported|no translation registered", ErrorClass.UNSUPPORTED))
NET_RUN_FAILURES = Classifier.of((r"not supported|unsupported (layer|op)", ErrorClass.UNSUPPORTED))
UNIT_TO_MS = {"us": 1e-3, "usec": 1e-3, "microseconds": 1e-3, "ms": 1.0, "msec": 1.0, "ns": 1e-6}


class DiagFormatError(ValueError):
    """The diagview output is not the CSV we read."""


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "_", name.strip().lower())


def parse_diag_csv(text: str) -> list[float]:
    """Per-inference ``Total Inference Time`` values (ms, in order) from ``snpe-diagview --output`` CSV."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise DiagFormatError("the diagview CSV is empty")
    name_col, value_col, unit_col = 1, 3, None
    header = [_norm(c) for c in rows[0]]
    if any("name" in c for c in header) and any("value" in c for c in header):
        name_col = next(i for i, c in enumerate(header) if "name" in c)
        value_col = next(i for i, c in enumerate(header) if "value" in c)
        unit_col = next((i for i, c in enumerate(header) if "unit" in c), None)
        rows = rows[1:]
    times: list[float] = []
    for n, row in enumerate(rows, start=1):
        if len(row) <= max(name_col, value_col) or _norm(row[name_col]) != "total_inference_time":
            continue
        try:
            value = float(row[value_col])
        except ValueError:
            raise DiagFormatError(f"row {n}: Total Inference Time {row[value_col]!r} is not a number") from None
        unit = _norm(row[unit_col]) if unit_col is not None and len(row) > unit_col and row[unit_col].strip() else "us"
        if unit not in UNIT_TO_MS:
            raise DiagFormatError(f"row {n}: unit {row[unit_col] if unit_col is not None else unit!r} is not a time")
        if not math.isfinite(value) or value < 0:
            raise DiagFormatError(f"row {n}: Total Inference Time {value!r} is not a duration")
        times.append(value * UNIT_TO_MS[unit])
    if not times:
        raise DiagFormatError(f"no Total Inference Time rows in the diagview CSV: {tail(text, 300)}")
    return times


class SnpeBackend(Backend):
    name = "snpe"
    runtime = "snpe"
    precisions = ("fp32", "fp16", "int8")
    OPTIONS = (
        "target", "serial", "adb", "converter", "host_bin", "device_snpe_dir", "device_dir", "perf_profile",
        "profiling_level", "calibration_inputs", "convert_timeout_s", "push_timeout_s", "run_timeout_s", "hardware",
    )  # fmt: skip

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        opts = Options(self.name, dict(options or {}), self.OPTIONS)
        self.target = opts.text("target", "gpu", choices=tuple(TARGET_PRECISIONS))
        allowed = TARGET_PRECISIONS[self.target]
        chosen = tuple(precisions) if precisions else allowed
        wrong = [p for p in chosen if p not in allowed]
        if wrong:
            raise ValueError(
                f"backend snpe with target {self.target} runs {', '.join(allowed)}, not {', '.join(wrong)} "
                f"(give --precision {','.join(allowed)} or another target)"
            )
        super().__init__(options, chosen)
        self.adb_tool = opts.text("adb", "")
        self.serial = opts.text("serial", "")
        self.converter = opts.text("converter", "tflite", choices=("tflite", "onnx"))
        self.host_bin = opts.text("host_bin", "")
        self.device_snpe_dir = opts.text("device_snpe_dir", "/data/local/tmp/snpe").rstrip("/")
        self.device_dir = opts.text("device_dir", "/data/local/tmp/eagle").rstrip("/")
        for key, value in (("device_snpe_dir", self.device_snpe_dir), ("device_dir", self.device_dir)):
            if not value.startswith("/") or value.count("/") < 2:
                raise ValueError(f"backend snpe: {key} must be an absolute folder on the phone, got {value!r}")
        self.perf_profile = opts.text("perf_profile", "high_performance")
        self.profiling_level = opts.text("profiling_level", "basic", choices=("basic", "detailed"))
        self.calibration_inputs = opts.integer("calibration_inputs", 8, minimum=1)
        self.convert_timeout_s = opts.seconds("convert_timeout_s", 300.0)
        self.push_timeout_s = opts.seconds("push_timeout_s", 120.0)
        self.run_timeout_s = opts.seconds("run_timeout_s", 600.0)
        self.board = opts.text("hardware", f"Snapdragon {self.target.upper()}")

    # -- tools ----------------------------------------------------------------------------------------
    def _configured(self, name: str) -> str:
        return str(Path(self.host_bin) / name) if self.host_bin else ""

    def _tool(self, name: str) -> str | None:
        return find_tool(name, self._configured(name))

    def _require(self, name: str) -> str:
        return require_tool(
            name,
            self._configured(name),
            hint="install the SNPE SDK and put its bin/x86_64-linux-clang on PATH (or option host_bin)",
        )

    def adb(self) -> Adb:
        return Adb(self._require_adb(), self.serial, timeout_s=self.push_timeout_s)

    def _require_adb(self) -> str:
        return require_tool("adb", self.adb_tool, hint="install android-tools-adb (or set the option adb)")

    def _converter_name(self) -> str:
        return "snpe-onnx-to-dlc" if self.converter == "onnx" else "snpe-tflite-to-dlc"

    def check(self) -> CheckResult:
        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        tools = [self._converter_name(), "snpe-diagview"] + (["snpe-dlc-quantize"] if self.target == "dsp" else [])
        for tool in tools:
            path = self._tool(tool)
            if path:
                found[tool] = path
            else:
                missing[tool] = "not found: install the SNPE SDK on this host, put bin/x86_64-linux-clang on PATH"
        needed = ("tensorflow", "tf2onnx") if self.converter == "onnx" else ("tensorflow",)
        for module in needed:
            if importlib.util.find_spec(module) is None:
                missing[module] = "needed to export models: pip install 'eagle-latbench[agent]'"
        adb_path = find_tool("adb", self.adb_tool)
        if adb_path is None:
            missing["adb"] = "not found: install android-tools-adb (or set the option adb)"
            return CheckResult(found, missing)
        found["adb"] = adb_path
        adb = Adb(adb_path, self.serial, timeout_s=30)
        problem = adb.device_problem()
        if problem:
            missing["phone"] = problem
            return CheckResult(found, missing)
        found["phone"] = self.serial or "the one device on adb"
        net_run = f"{self.device_snpe_dir}/bin/snpe-net-run"
        try:
            probe = adb.shell(
                f"test -x {shlex.quote(net_run)}", timeout_s=30, error_class=ErrorClass.RUNTIME, check=False
            )
        except BackendError as exc:
            missing["snpe-net-run"] = exc.message
        else:
            if probe.returncode == 0:
                found["snpe-net-run"] = f"{net_run} on the phone"
            else:
                missing["snpe-net-run"] = (
                    f"{net_run} is not on the phone: push the SDK's bin/, lib/ and dsp/ for the phone's "
                    "architecture to device_snpe_dir (see deploy/guides/android-snpe.md)"
                )
        return CheckResult(found, missing)

    def hardware(self) -> str:
        return self.board

    def load(self) -> None:
        load_keras_builder()

    def versions(self) -> dict[str, str]:
        out = framework_versions()
        out["snpe_target"] = self.target
        return out

    def parse(self, output: str) -> list[float]:
        return parse_diag_csv(output)

    # -- a job ----------------------------------------------------------------------------------------
    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        local = job_folder(workdir, "snpe", job)
        prepared = Prepared(job, artifact=None, info={"local": str(local)})
        try:
            dlc = self._dlc(job, workdir, local, prepared)
            inputs = self._write_inputs(local, job.params)
            remote = f"{self.device_dir}/job{job.job_id}-{uuid.uuid4().hex[:8]}"
            adb = self.adb()
            adb.shell(
                f"mkdir -p {shlex.quote(remote)}",
                timeout_s=self.push_timeout_s,
                error_class=ErrorClass.RUNTIME,
                what="making the job folder",
            )
            prepared.info["remote"] = remote
            for path in [dlc, *inputs]:
                adb.push(path, f"{remote}/{path.name}", timeout_s=self.push_timeout_s)
            prepared.artifact = dlc.name
        except BaseException:
            self.cleanup(prepared)
            raise
        return prepared

    def _dlc(self, job: JobSpec, workdir: Path, local: Path, prepared: Prepared) -> Path:
        """The job's DLC in ``local`` (from the cache, else converted and, for the DSP, quantised)."""
        precision = "int8" if self.target == "dsp" else "fp32"
        cache = ArtifactCache(Path(workdir) / "artifacts")
        kind = "onnx" if self.converter == "onnx" else "tflite_fp32"
        source = model_artifact(job, workdir, kind)
        prepared.build_s, prepared.cached = source.build_s, source.cached
        prepared.info["graph_key"] = source.graph_key
        out = local / "model.dlc"
        data = cache.get(source.graph_key, precision, ".dlc")
        if data is not None:
            out.write_bytes(data)
            return out
        prepared.cached = False
        model_file = local / ("model.onnx" if self.converter == "onnx" else "model.tflite")
        model_file.write_bytes(source.data)
        float_dlc = local / "model_float.dlc"
        converter = self._converter_name()
        convert_s = self._convert(
            converter, ["--input_network", str(model_file)], "--output_path", float_dlc, "converting to DLC"
        )
        if self.target == "dsp":
            calib = self._write_raws(local, "calib", self.calibration_inputs, seed=1)
            listing = local / "calib.txt"
            listing.write_text("".join(f"{p}\n" for p in calib))
            convert_s += self._convert(
                "snpe-dlc-quantize",
                ["--input_dlc", str(float_dlc), "--input_list", str(listing)],
                "--output_dlc",
                out,
                "quantising the DLC",
            )
        else:
            float_dlc.replace(out)
        prepared.convert_s = source.convert_s + convert_s
        cache.put(source.graph_key, precision, ".dlc", out.read_bytes())
        return out

    def _convert(self, tool: str, args: list[str], output_flag: str, output: Path, what: str) -> float:
        """Run a host converter writing ``output``; the seconds it took. It must write a non-empty file."""
        result = run_tool(
            [self._require(tool), *args, output_flag, str(output)],
            timeout_s=self.convert_timeout_s,
            error_class=ErrorClass.CONVERT,
            what=what,
            classify=CONVERT_FAILURES,
        )
        if not output.is_file() or os.path.getsize(output) == 0:
            raise BackendError(ErrorClass.CONVERT, f"{tool} reported success but wrote no {output.name}")
        return result.elapsed_s

    @staticmethod
    def _write_raws(folder: Path, stem: str, count: int, seed: int) -> list[Path]:
        rng = np.random.default_rng(seed)
        paths = []
        for i in range(count):
            path = folder / f"{stem}{i}.raw"
            rng.standard_normal(INPUT_SHAPE, dtype=np.float32).tofile(path)
            paths.append(path)
        return paths

    def _write_inputs(self, local: Path, params: ProtocolParams) -> list[Path]:
        """Raw inputs (one per group, one for the warm-up) and the input list, one line per inference."""
        groups = math.ceil(params.runs / params.group_size)
        raws = self._write_raws(local, "group", groups, seed=0)
        lines: list[str] = []
        if params.warmup:
            raws.append(self._write_raws(local, "warmup", 1, seed=2)[0])
            lines += [raws[-1].name] * params.warmup
        lines += [raws[i // params.group_size].name for i in range(params.runs)]
        listing = local / "inputs.txt"
        listing.write_text("".join(f"{line}\n" for line in lines))
        return [*raws, listing]

    def net_run_command(self, remote: str, dlc: str, precision: str) -> str:
        snpe = shlex.quote(self.device_snpe_dir)
        flags = list(TARGET_FLAGS[self.target])
        if self.target == "gpu" and precision == "fp16":
            flags += ["--gpu_mode", "float16"]
        args = [
            "--container",
            dlc,
            "--input_list",
            "inputs.txt",
            "--output_dir",
            "out",
            "--perf_profile",
            self.perf_profile,
            "--profiling_level",
            self.profiling_level,
            *flags,
        ]
        return (
            f"cd {shlex.quote(remote)} && export LD_LIBRARY_PATH={snpe}/lib:$LD_LIBRARY_PATH && "
            f'export ADSP_LIBRARY_PATH="{self.device_snpe_dir}/dsp;/system/lib/rfsa/adsp;'
            f'/system/vendor/lib/rfsa/adsp;/dsp" && '
            f"{snpe}/bin/snpe-net-run " + " ".join(shlex.quote(a) for a in args)
        )

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        remote, local = prepared.info["remote"], Path(prepared.info["local"])
        adb = self.adb()
        adb.shell(
            self.net_run_command(remote, prepared.artifact, prepared.job.precision),
            timeout_s=self.run_timeout_s + min(30.0, self.run_timeout_s),  # backstop for adb itself
            device_timeout_s=self.run_timeout_s,  # snpe-net-run is killed on the phone, not only adb
            error_class=ErrorClass.RUNTIME,
            what="snpe-net-run",
            classify=NET_RUN_FAILURES,
        )
        listing = adb.shell(
            f"ls {shlex.quote(remote)}/out",
            timeout_s=self.push_timeout_s,
            error_class=ErrorClass.RUNTIME,
            what="listing snpe-net-run's output",
        )
        logs = sorted(name for name in listing.stdout.split() if re.fullmatch(r"SNPEDiag(_\d+)?\.log", name))
        if not logs:
            raise BackendError(
                ErrorClass.RUNTIME,
                f"snpe-net-run wrote no SNPEDiag log (profiling off?); out/ holds: {tail(listing.stdout, 300)}",
            )
        diag_log = local / logs[0]
        adb.pull(f"{remote}/out/{logs[0]}", diag_log, timeout_s=self.push_timeout_s)
        diag_csv = local / "diag.csv"
        run_tool(
            [self._require("snpe-diagview"), "--input_log", str(diag_log), "--output", str(diag_csv)],
            timeout_s=120,
            error_class=ErrorClass.RUNTIME,
            what="reading the diagnostic log",
        )
        try:
            times = self.parse(diag_csv.read_text(errors="replace"))
        except (OSError, DiagFormatError) as exc:
            raise BackendError(ErrorClass.RUNTIME, f"snpe-diagview's CSV: {exc}") from exc
        expected = params.warmup + params.runs
        if len(times) != expected:
            raise BackendError(
                ErrorClass.RUNTIME,
                f"the diagnostic log holds {len(times)} inferences; the input list asked for {expected}",
            )
        return times[params.warmup :]

    def cleanup(self, prepared: Prepared) -> None:
        remote = prepared.info.pop("remote", None)
        try:
            if remote:
                self.adb().shell(
                    f"rm -rf {shlex.quote(remote)}",
                    timeout_s=self.push_timeout_s,
                    error_class=ErrorClass.RUNTIME,
                    what="cleaning up on the phone",
                )
        finally:
            remove_job_folder(prepared, "local")
