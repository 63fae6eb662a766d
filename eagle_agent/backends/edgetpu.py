"""Edge TPU (int8): full-integer TFLite compiled with ``edgetpu_compiler``, run by LiteRT through the
``libedgetpu`` delegate.

Steps of a job: the int8 ``.tflite`` of the foundation exporter (cached by graph key) ->
``edgetpu_compiler -s -o OUT -t T model.tflite`` (writes ``OUT/model_edgetpu.tflite`` and a log) -> a
LiteRT interpreter with ``load_delegate('libedgetpu.so.1')`` -> the protocol, with at least
``min_warmup`` untimed runs first (the first invocations load the model, and on a cold USB stick the
firmware, into the TPU).

The compiler's log (Coral docs and captured logs of compiler v16; fixtures in tests/agent/fixtures):
``Edge TPU Compiler version 16.0.384591198`` ... ``Model compiled successfully in 1524 ms.`` ...
``Number of Edge TPU subgraphs: 1`` ``Total number of operations: 267`` and, when some ops stay on the
CPU, ``Number of operations that will run on Edge TPU: 264`` / ``... on CPU: 3``; ``-s`` adds the
``Operator  Count  Status`` table. A model that compiles but does not map fully is measured and the fact
is recorded (``device_info.edgetpu`` in the result statistics); a compiler that exits non-zero is
``unsupported`` (HW-NAS-Bench records such models as -1); a compiler killed by a signal or printing no
readable log is a ``compile`` failure, which the server retries.

Options: ``compiler`` (path or name, default ``edgetpu_compiler``), ``delegate`` (default
``libedgetpu.so.1``), ``delegate_loader`` (``"module:function"`` taking the delegate path and returning
a delegate, or None to run on the CPU interpreter; default LiteRT's ``load_delegate``; tests inject a
stand-in), ``compile_timeout_s`` (180, the compiler's own default), ``min_warmup`` (10),
``require_device`` (true: ``check`` looks for a USB or PCIe Edge TPU).
"""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from eagle_agent.backends import Backend, BackendError, CheckResult, ErrorClass, JobSpec, Prepared, stage
from eagle_agent.backends._artifacts import job_folder, model_artifact, remove_job_folder, with_info
from eagle_agent.backends._nb201 import framework_versions, load_keras_builder, time_runner
from eagle_agent.backends.tools import Options, find_tool, run_tool, tail
from latbench.protocol import ProtocolParams, ProtocolResult
from latbench.runtimes import LiteRTRunner, _interpreter_class, runtime_versions

# USB ids of the Coral USB Accelerator: before its firmware is loaded / after.
EDGETPU_USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))
PCIE_DEVICE = Path("/dev/apex_0")
SYS_USB = Path("/sys/bus/usb/devices")


class CompilerLogError(ValueError):
    """The compiler's output is not the log we know."""


@dataclass(frozen=True)
class CompileReport:
    """What ``edgetpu_compiler`` says about one model."""

    compiler_version: str
    ops_on_tpu: int
    ops_on_cpu: int
    total_ops: int
    subgraphs: int
    operators: tuple[tuple[str, int, str], ...] = field(default=())  # (op, count, status) from -s

    @property
    def fully_mapped(self) -> bool:
        return self.ops_on_cpu == 0 and self.subgraphs <= 1

    def to_info(self) -> dict[str, Any]:
        out = asdict(self)
        out["operators"] = [{"op": op, "count": n, "status": status} for op, n, status in self.operators]
        out["fully_mapped"] = self.fully_mapped
        return out


_VERSION_RE = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_SUCCESS_RE = re.compile(r"Models? compiled successfully", re.IGNORECASE)
_ON_TPU_RE = re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)")
_ON_CPU_RE = re.compile(r"Number of operations that will run on CPU:\s*(\d+)")
_TOTAL_RE = re.compile(r"Total number of operations:\s*(\d+)")
_SUBGRAPHS_RE = re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)")
_TABLE_ROW_RE = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")
MAPPED = "Mapped to Edge TPU"


def parse_compiler_log(text: str) -> CompileReport:
    """Read a successful compile log; :class:`CompilerLogError` if it is not one."""
    if not _SUCCESS_RE.search(text):
        raise CompilerLogError(f"no 'Model compiled successfully' in the compiler's output: {tail(text, 400)}")
    version = _VERSION_RE.search(text)
    operators = tuple(
        (m.group(1), int(m.group(2)), m.group(3))
        for m in (_TABLE_ROW_RE.match(line.strip()) for line in text.splitlines())
        if m and m.group(1) != "Operator"
    )
    total = _TOTAL_RE.search(text)
    subgraphs = _SUBGRAPHS_RE.search(text)
    on_tpu, on_cpu = _ON_TPU_RE.search(text), _ON_CPU_RE.search(text)
    if on_tpu and on_cpu:
        tpu, cpu = int(on_tpu.group(1)), int(on_cpu.group(1))
    elif operators:
        tpu = sum(n for _, n, status in operators if status == MAPPED)
        cpu = sum(n for _, n, status in operators if status != MAPPED)
    elif total and "not all operations are supported" not in text:
        tpu, cpu = int(total.group(1)), 0  # compiled with nothing said about the CPU: all on the TPU
    else:
        raise CompilerLogError(f"cannot tell how many operations run on the Edge TPU from: {tail(text, 400)}")
    return CompileReport(
        compiler_version=version.group(1) if version else "",
        ops_on_tpu=tpu,
        ops_on_cpu=cpu,
        total_ops=int(total.group(1)) if total else tpu + cpu,
        subgraphs=int(subgraphs.group(1)) if subgraphs else 1,
        operators=operators,
    )


def default_delegate_loader(path: str) -> Any:
    """LiteRT's ``load_delegate`` (``ai_edge_litert``, else ``tflite_runtime``)."""
    try:
        from ai_edge_litert.interpreter import load_delegate
    except ImportError:
        from tflite_runtime.interpreter import load_delegate
    return load_delegate(path)


def _resolve_loader(spec: str) -> Callable[[str], Any]:
    if not spec:
        return default_delegate_loader
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"delegate_loader must be 'package.module:function', got {spec!r}")
    try:
        loader = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load delegate_loader {spec!r}: {exc}") from exc
    if not callable(loader):
        raise ValueError(f"delegate_loader {spec!r} is not callable")
    return loader


class DelegatedRunner(LiteRTRunner):
    """A LiteRT runner whose interpreter uses ``delegates`` (an empty list: the CPU interpreter)."""

    def __init__(self, tflite_bytes: bytes, delegates: Sequence[Any]) -> None:
        interpreter_cls = _interpreter_class()
        self.interpreter = interpreter_cls(
            model_content=bytes(tflite_bytes), experimental_delegates=list(delegates) or None
        )
        self.interpreter.allocate_tensors()
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self._in["shape"])
        self.input_dtype = np.dtype(self._in["dtype"])
        self._last = None


def usb_edgetpu_present(sys_usb: Path = SYS_USB) -> bool:
    for device in sys_usb.glob("*") if sys_usb.is_dir() else ():
        try:
            ids = ((device / "idVendor").read_text().strip(), (device / "idProduct").read_text().strip())
        except OSError:
            continue
        if ids in EDGETPU_USB_IDS:
            return True
    return False


class EdgeTpuBackend(Backend):
    name = "edgetpu"
    runtime = "edgetpu"
    precisions = ("int8",)
    OPTIONS = ("compiler", "delegate", "delegate_loader", "compile_timeout_s", "min_warmup", "require_device")

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions)
        opts = Options(self.name, self.options, self.OPTIONS)
        self.compiler = opts.text("compiler", "")
        self.delegate = opts.text("delegate", "libedgetpu.so.1")
        self.loader_spec = opts.text("delegate_loader", "")
        self.compile_timeout_s = opts.seconds("compile_timeout_s", 180.0)
        self.min_warmup = opts.integer("min_warmup", 10, minimum=0)
        self.require_device = opts.flag("require_device", True)
        self._compiler_version = ""

    def check(self) -> CheckResult:
        found: dict[str, str] = {}
        missing: dict[str, str] = {}
        compiler = find_tool("edgetpu_compiler", self.compiler)
        if compiler is None:
            missing["edgetpu_compiler"] = (
                f"not found {'at ' + self.compiler if self.compiler else 'on PATH'}: install the Debian package "
                "edgetpu-compiler (x86-64 only) or set the option compiler"
            )
        else:
            found["edgetpu_compiler"] = compiler
        if "/" in self.delegate:
            if Path(self.delegate).is_file():
                found["delegate"] = self.delegate
            else:
                missing["delegate"] = f"{self.delegate} does not exist: install libedgetpu1-std or fix the option"
        elif ctypes.util.find_library(self.delegate.removeprefix("lib").split(".so")[0]):
            found["delegate"] = self.delegate
        else:
            missing["delegate"] = f"{self.delegate} is not in the linker cache: install libedgetpu1-std (Coral apt)"
        if importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec("tflite_runtime"):
            found["litert"] = runtime_versions().get("litert") or "installed"
        else:
            missing["litert"] = "no LiteRT interpreter: pip install ai-edge-litert"
        if importlib.util.find_spec("tensorflow") is None:
            missing["tensorflow"] = "needed to convert models: pip install 'eagle-latbench[agent]'"
        if self.require_device:
            if PCIE_DEVICE.exists():
                found["edgetpu_device"] = str(PCIE_DEVICE)
            elif usb_edgetpu_present():
                found["edgetpu_device"] = "USB Accelerator"
            else:
                missing["edgetpu_device"] = (
                    "no Edge TPU found (no USB device 1a6e:089a / 18d1:9302, no /dev/apex_0): plug in the "
                    "USB Accelerator, or set require_device = false"
                )
        return CheckResult(found, missing)

    def hardware(self) -> str:
        return "Google Edge TPU"

    def load(self) -> None:
        load_keras_builder()
        _resolve_loader(self.loader_spec)  # a bad option fails the worker's start, not every job

    def versions(self) -> dict[str, str]:
        out = framework_versions(litert=True)
        if self._compiler_version:
            out["edgetpu_compiler"] = self._compiler_version
        return out

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        artifact = model_artifact(job, workdir, "tflite_int8")
        tmp = job_folder(workdir, "edgetpu", job)
        prepared = artifact.prepared(job, tmp=str(tmp))
        try:
            compiled, report = self.compile(artifact.data, tmp)
            self._compiler_version = report.compiler_version
            prepared.info["edgetpu"] = report.to_info()
            with stage(ErrorClass.RUNTIME):
                loader = _resolve_loader(self.loader_spec)
                try:
                    delegate = loader(self.delegate)
                except (ValueError, OSError, RuntimeError) as exc:
                    raise BackendError(
                        ErrorClass.RUNTIME, f"cannot load the Edge TPU delegate {self.delegate}: {exc}"
                    ) from exc
                prepared.artifact = DelegatedRunner(compiled, [delegate] if delegate is not None else [])
        except BaseException:
            self.cleanup(prepared)
            raise
        return prepared

    def compile(self, tflite: bytes, tmp: Path) -> tuple[bytes, CompileReport]:
        """Compile an int8 model in ``tmp``; the compiled bytes and what the compiler said."""
        compiler = find_tool("edgetpu_compiler", self.compiler)
        if compiler is None:
            raise BackendError(ErrorClass.RUNTIME, "edgetpu_compiler not found (see the agent's check)")
        source = tmp / "model.tflite"
        source.write_bytes(tflite)
        out_dir = tmp / "compiled"
        out_dir.mkdir()
        timeout = int(self.compile_timeout_s)
        result = run_tool(
            [compiler, "-s", "-o", str(out_dir), "-t", str(timeout), str(source)],
            timeout_s=self.compile_timeout_s + min(30.0, self.compile_timeout_s),  # its own timer first
            error_class=ErrorClass.UNSUPPORTED,
            what="compiling for the Edge TPU",
            check=False,
        )
        if result.returncode < 0:
            raise BackendError(
                ErrorClass.COMPILE, f"edgetpu_compiler was killed by signal {-result.returncode}: {result.tail()}"
            )
        if result.returncode > 0:
            raise BackendError(
                ErrorClass.UNSUPPORTED,
                f"edgetpu_compiler cannot compile this model (exit code {result.returncode}): {result.tail()}",
            )
        try:
            report = parse_compiler_log(result.stdout)
        except CompilerLogError as exc:
            raise BackendError(ErrorClass.COMPILE, f"edgetpu_compiler: {exc}") from exc
        compiled = out_dir / "model_edgetpu.tflite"
        if not compiled.is_file() or compiled.stat().st_size == 0:
            raise BackendError(ErrorClass.COMPILE, f"edgetpu_compiler reported success but wrote no {compiled.name}")
        return compiled.read_bytes(), report

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        params = replace(params, warmup=max(params.warmup, self.min_warmup))
        result = time_runner(prepared.artifact, params)
        return with_info(result, {"edgetpu": prepared.info.get("edgetpu", {}), "warmup_runs": params.warmup})

    def cleanup(self, prepared: Prepared) -> None:
        prepared.artifact = None
        remove_job_folder(prepared, "tmp")
