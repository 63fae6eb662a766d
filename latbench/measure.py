"""Build one NB201 model here, time it with the paper's protocol, and report it (``eagle measure``).

The steps are exposed one by one (:func:`valid_cell`, :func:`build_model`, :func:`convert_model`,
:func:`make_runner`, :func:`input_factory`) so agents and benchmarks can reuse a built model (e.g. time
it several times or convert it to several precisions); :func:`measure_arch` chains them for one run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from latbench.graph import CellGraph, nb201_cell
from latbench.nb201 import Arch, parse_arch
from latbench.protocol import ProtocolParams, time_callable
from latbench.runtimes import Runner, litert_runner, runtime_versions, tf_runner

RUNTIMES = ("tf", "litert")
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_SHAPE = (32, 32, 3)  # NB201 on CIFAR; the protocol times batch 1
BATCH = 1


class MeasureError(ValueError):
    """A measurement that cannot be made as asked (invalid cell, unknown runtime or precision)."""


def check_options(runtime: str, precision: str) -> None:
    if runtime not in RUNTIMES:
        raise MeasureError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise MeasureError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if runtime == "tf" and precision != "fp32":
        raise MeasureError(f"the tf runtime runs the Keras model in fp32 only; use --runtime litert for {precision}")


def valid_cell(arch: Arch) -> CellGraph:
    """The pruned cell of ``arch``; :class:`MeasureError` if pruning leaves it without an output."""
    cell = nb201_cell(arch)
    if not cell.valid:
        raise MeasureError(
            f"NB201 cell {arch.arch_str} (op code {arch.op_code}) is invalid: after pruning no path "
            "leads from input to output, so it computes nothing and has no latency"
        )
    return cell


def build_model(cell: CellGraph, seed: int = 0) -> tuple[Any, float]:
    """The Keras model of a pruned cell and the seconds it took to build."""
    from latbench.models.keras_nb201 import build_nb201

    start = time.perf_counter()
    model = build_nb201(cell, input_shape=INPUT_SHAPE, seed=seed)
    return model, time.perf_counter() - start


def convert_model(model: Any, precision: str) -> tuple[bytes, float]:
    """The ``.tflite`` bytes of a Keras model at ``precision`` and the seconds the conversion took."""
    from latbench.models.export import to_tflite

    if precision not in PRECISIONS:
        raise MeasureError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    start = time.perf_counter()
    data = to_tflite(model, precision)
    return data, time.perf_counter() - start


def make_runner(runtime: str, model: Any = None, tflite: bytes | None = None, num_threads: int | None = None) -> Runner:
    if runtime == "tf":
        return tf_runner(model, batch_size=BATCH)
    if runtime == "litert":
        if tflite is None:
            raise MeasureError("the litert runtime needs a converted .tflite model")
        return litert_runner(tflite, num_threads=num_threads)
    raise MeasureError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")


def input_factory(seed: int = 0) -> Callable[[], np.ndarray]:
    """Fresh random batch-1 inputs (standard normal, float32), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)

    def make_input() -> np.ndarray:
        return rng.standard_normal((BATCH, *INPUT_SHAPE), dtype=np.float32)

    return make_input


def clear_session() -> None:
    """Free the Keras graph state of the last model (Keras 3 keeps it per process)."""
    import keras

    keras.backend.clear_session()


def measure_arch(
    arch: Arch | int | str,
    runtime: str = "tf",
    precision: str = "fp32",
    params: ProtocolParams | None = None,
    *,
    seed: int = 0,
    num_threads: int | None = None,
    include_raw: bool = False,
) -> dict[str, Any]:
    """Build, (convert,) and time one NB201 architecture here; a JSON-safe report.

    ``arch`` is an :class:`Arch` or anything :func:`latbench.nb201.parse_arch` reads.
    """
    if not isinstance(arch, Arch):
        arch = parse_arch(arch)
    check_options(runtime, precision)
    params = params or ProtocolParams()
    cell = valid_cell(arch)
    convert_s: float | None = None
    try:
        model, build_s = build_model(cell, seed=seed)
        tflite = None
        if runtime == "litert":
            tflite, convert_s = convert_model(model, precision)
        run = make_runner(runtime, model=model, tflite=tflite, num_threads=num_threads)
        result = time_callable(run, input_factory(seed), params)
    finally:
        clear_session()
    return {
        "index": arch.index,
        "arch_str": arch.arch_str,
        "op_code": arch.op_code,
        "canonical_key": cell.canonical_key,
        "runtime": runtime,
        "precision": precision,
        "latency_ms": result.latency_ms,
        "stats": result.to_dict(include_raw=include_raw),
        "params": params.to_dict(),
        "num_threads": num_threads,
        "build_s": build_s,
        "convert_s": convert_s,
        "versions": runtime_versions(),
    }
