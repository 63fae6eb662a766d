"""Shared steps of the backends that build the NB201 Keras model, delegated to :mod:`latbench.measure` so
an agent measures exactly what ``eagle measure`` does (same model, seed, inputs), only classified for
ReportFailure."""

from __future__ import annotations

from typing import Any

from eagle_agent.backends import BackendError, ErrorClass, JobSpec, Prepared, stage
from latbench.graph import CellGraph
from latbench.protocol import ProtocolParams, ProtocolResult, time_callable
from latbench.runtimes import runtime_versions


def job_cell(job: JobSpec) -> CellGraph:
    """The pruned cell of a job; invalid cells (output unreachable) have no latency to measure."""
    from latbench.measure import MeasureError, valid_cell

    try:
        return valid_cell(job.arch())
    except MeasureError as exc:
        raise BackendError(ErrorClass.UNSUPPORTED, str(exc)) from exc


def build_keras(cell: CellGraph) -> tuple[Any, float]:
    """Build the Keras model of a cell in a fresh Keras session; return it and the seconds it took."""
    with stage(ErrorClass.BUILD):
        from latbench.measure import build_model, clear_session

        clear_session()  # one graph per model: nothing accumulates across jobs in the worker
        return build_model(cell)


def load_keras_builder() -> None:
    """Import TensorFlow, Keras and the model builder (seconds) before the first job."""
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import latbench.measure
    import latbench.models.keras_nb201  # noqa: F401


def prepare_tf_runner(job: JobSpec) -> Prepared:
    """The job's Keras model behind a traced ``tf.function`` (traced here: inside a ``tf.device`` block its
    ops are placed on that device)."""
    cell = job_cell(job)
    model, build_s = build_keras(cell)
    with stage(ErrorClass.BUILD):  # tracing the tf.function is part of making the model runnable
        from latbench.measure import make_runner

        runner = make_runner("tf", model=model)
    return Prepared(job, artifact=runner, build_s=build_s, info={"graph_key": cell.canonical_key})


def time_runner(runner: Any, params: ProtocolParams) -> ProtocolResult:
    """Time ``runner`` on the NB201 inputs with the protocol; a failure is a ``runtime`` one."""
    from latbench.measure import input_factory

    with stage(ErrorClass.RUNTIME):
        return time_callable(runner, input_factory(), params)


def framework_versions(litert: bool = False) -> dict[str, str]:
    """The installed runtime versions a measurement records; LiteRT's only where it runs the model."""
    return {k: v for k, v in runtime_versions().items() if v and (litert or k != "litert")}
