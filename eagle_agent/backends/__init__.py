"""Device backends: the one small interface the agent loop drives, and a registry of implementations.

A backend measures one leased job on its device, in the agent's worker (child) process:

* ``capabilities()`` - the "runtime:precision" strings it can run (sent at Register and LeaseJob);
* ``load()`` - import its framework once in the worker, so the first job's timeout does not pay it;
* ``check()`` - what it needs and whether it is there (run in the agent process before registering;
  must be cheap: look for packages, tools, devices, never build a model);
* ``prepare(job, workdir)`` - build / convert / compile / push the model; return a :class:`Prepared`;
* ``run(prepared, params)`` - time it with the protocol and return a ``ProtocolResult`` (or the raw
  timings in milliseconds, which the worker summarises);
* ``parse(output)`` - for backends that drive an external tool: turn the tool's output into raw
  timings (tested on captured output);
* ``cleanup(prepared)`` - remove per-job temporary files.

Failures are raised as :class:`BackendError` with an :class:`ErrorClass`; the worker classifies any
other exception by the stage it came from (``prepare`` -> build, ``run`` -> runtime). Hardware backends
(GPU, Jetson, EdgeTPU, SNPE) plug in through :func:`register_backend` or a line in ``_BUILTIN`` without
touching the loop. Backend modules import their frameworks lazily, inside ``prepare``/``run``.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from latbench.nb201 import Arch, ArchError
from latbench.protocol import ProtocolParams, ProtocolResult


class ErrorClass(StrEnum):
    """Why a job failed, as reported through ReportFailure (the proto's ``ErrorClass``)."""

    BUILD = "build"
    CONVERT = "convert"
    COMPILE = "compile"
    UNSUPPORTED = "unsupported"
    RUNTIME = "runtime"
    TIMEOUT = "timeout"


class BackendError(Exception):
    """A classified failure of one job; ``message`` should be the tool's or library's own words."""

    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error_class = ErrorClass(error_class)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across the worker pipe
        return (type(self), (self.error_class, self.message))


@contextmanager
def stage(error_class: ErrorClass) -> Iterator[None]:
    """Classify any exception escaping the block as ``error_class`` (BackendErrors keep theirs)."""
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(error_class, describe_exception(exc)) from exc


def describe_exception(exc: BaseException, limit: int = 2000) -> str:
    """``Type: message`` trimmed to ``limit`` characters (a TF error can be pages long)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[: limit - 15] + " ... (trimmed)"


@dataclass(frozen=True)
class JobSpec:
    """A leased job, as plain picklable data (what crosses into the worker process)."""

    job_id: int
    lease_id: str
    arch_index: int
    arch_str: str
    runtime: str
    precision: str
    runs: int
    warmup: int
    group_size: int
    attempt: int = 1
    campaign_id: int = 0
    pause_s: float = 0.0
    canonical_key: str = ""

    @property
    def params(self) -> ProtocolParams:
        return ProtocolParams(runs=self.runs, warmup=self.warmup, group_size=self.group_size, pause_s=self.pause_s)

    @property
    def capability(self) -> str:
        return f"{self.runtime}:{self.precision}"

    def arch(self) -> Arch:
        """The job's cell; the index and the arch string must name the same one."""
        try:
            arch = Arch.from_index(self.arch_index)
        except ArchError as exc:
            raise BackendError(ErrorClass.BUILD, f"job {self.job_id}: {exc}") from exc
        if self.arch_str and self.arch_str != arch.arch_str:
            raise BackendError(
                ErrorClass.BUILD,
                f"job {self.job_id}: arch index {self.arch_index} is {arch.arch_str}, but the job says {self.arch_str}",
            )
        return arch


@dataclass
class Prepared:
    """What ``prepare`` made for one job: an artifact (model, runner, file...) and its costs."""

    job: JobSpec
    artifact: Any
    build_s: float = 0.0
    convert_s: float = 0.0
    cached: bool = False  # the converted artifact came from the on-disk cache
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """What a backend found on this machine; ``missing`` maps a component to what to do about it."""

    found: dict[str, str]
    missing: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "found": dict(self.found), "missing": dict(self.missing)}


class Backend(ABC):
    """One way of timing NB201 models on one device family (see the module docstring)."""

    name: ClassVar[str]
    runtime: str  # class-level for real backends; the debug backend sets it per instance
    precisions: tuple[str, ...] = ("fp32",)

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})
        chosen = tuple(precisions) if precisions else self.precisions
        unknown = [p for p in chosen if p not in self.precisions]
        if unknown:
            raise ValueError(
                f"backend {self.name} cannot run precision {', '.join(unknown)}; it runs {', '.join(self.precisions)}"
            )
        self.enabled_precisions: tuple[str, ...] = chosen

    def capabilities(self) -> list[str]:
        return [f"{self.runtime}:{p}" for p in self.enabled_precisions]

    @abstractmethod
    def check(self) -> CheckResult: ...

    def load(self) -> None:  # noqa: B027 - optional hook
        """Import heavy frameworks; the worker calls it once, before its first job (not timed)."""

    @abstractmethod
    def prepare(self, job: JobSpec, workdir: Path) -> Prepared: ...

    @abstractmethod
    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]: ...

    def parse(self, output: str) -> list[float]:
        """Raw timings (ms) from an external tool's output; only tool-driven backends need it."""
        raise NotImplementedError(f"backend {self.name} does not parse tool output")

    def versions(self) -> dict[str, str]:
        """Versions of what the measurement depends on (recorded with every result)."""
        return {}

    def hardware(self) -> str:
        """The hardware this backend measures, for people (e.g. the CPU or GPU model)."""
        return ""

    def cleanup(self, prepared: Prepared) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Remove per-job temporary files."""

    def ensure_supported(self, job: JobSpec) -> None:
        """Refuse a job this backend cannot run (the server should never hand one out)."""
        if job.capability not in self.capabilities():
            raise BackendError(
                ErrorClass.UNSUPPORTED,
                f"backend {self.name} runs {', '.join(self.capabilities())}; job {job.job_id} "
                f"asks for {job.capability}",
            )


class ArtifactCache:
    """Converted models on disk, keyed by canonical graph key + precision (equivalent cells share one).

    Writes go to a temporary file that is fsync'd and renamed, so a killed worker never leaves a
    truncated artifact behind.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str, precision: str, suffix: str) -> Path:
        if not key or any(c in key for c in "/\\.") or not precision.isalnum():
            raise ValueError(f"bad cache key {key!r} / precision {precision!r}")
        return self.root / f"{key}_{precision}{suffix}"

    def get(self, key: str, precision: str, suffix: str) -> bytes | None:
        path = self.path(key, precision, suffix)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, precision: str, suffix: str, data: bytes) -> Path:
        path = self.path(key, precision, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


# name -> "module:Class"; hardware backends add a line here (or call register_backend at import).
_BUILTIN: dict[str, str] = {
    "cpu_tf": "eagle_agent.backends.cpu_tf:CpuTfBackend",
    "cpu_litert": "eagle_agent.backends.cpu_litert:CpuLiteRTBackend",
    "debug": "eagle_agent.backends.debug:DebugBackend",
    "gpu_tf": "eagle_agent.backends.gpu_tf:GpuTfBackend",
    "torch_gpu": "eagle_agent.backends.torch_gpu:TorchGpuBackend",
    "jetson_trt": "eagle_agent.backends.jetson:JetsonTrtBackend",
    "jetson_tftrt": "eagle_agent.backends.jetson:JetsonTfTrtBackend",
    "edgetpu": "eagle_agent.backends.edgetpu:EdgeTpuBackend",
    "snpe": "eagle_agent.backends.snpe:SnpeBackend",
}
_REGISTRY: dict[str, str | type[Backend]] = dict(_BUILTIN)

# The backend an agent uses for ``--runtime X`` when no backend is named.
RUNTIME_DEFAULT_BACKEND: dict[str, str] = {
    "tf": "cpu_tf",
    "litert": "cpu_litert",
    "torch": "torch_gpu",
    "tensorrt": "jetson_trt",
    "tftrt": "jetson_tftrt",
    "edgetpu": "edgetpu",
    "snpe": "snpe",
}


class UnknownBackendError(LookupError):
    pass


def register_backend(name: str, target: str | type[Backend]) -> None:
    """Make a backend available by name (``target``: a class or ``"package.module:Class"``)."""
    _REGISTRY[name] = target


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def load_backend_class(name: str) -> type[Backend]:
    """The class of a registered backend, or of a ``"package.module:Class"`` spec."""
    target = _REGISTRY.get(name, name if ":" in name else None)
    if target is None:
        raise UnknownBackendError(
            f"unknown backend {name!r}; known: {', '.join(backend_names())} (or give 'package.module:Class')"
        )
    if isinstance(target, type):
        return target
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownBackendError(f"cannot load backend {name!r} from {target!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UnknownBackendError(f"{target!r} is not a Backend subclass")
    return cls


def create_backend(
    name: str, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None
) -> Backend:
    return load_backend_class(name)(options, precisions)
