"""Shared steps of the NB201 CPU backends, delegated to :mod:`latbench.measure` so an agent measures
exactly what ``eagle measure`` does (same model, seed, inputs), only classified for ReportFailure."""

from __future__ import annotations

from typing import Any

from eagle_agent.backends import BackendError, ErrorClass, JobSpec, stage
from latbench.graph import CellGraph


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
