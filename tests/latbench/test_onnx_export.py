"""ONNX export of the Keras model: a fixed 1x32x32x3 input, and ONNX Runtime computes what Keras does."""

from __future__ import annotations

import numpy as np
import pytest

from latbench.graph import nb201_cell
from latbench.nb201 import Arch


@pytest.mark.slow
def test_onnx_runtime_gives_the_keras_outputs() -> None:
    from latbench.measure import build_model, clear_session
    from latbench.models.onnx_export import onnx_input_shape, onnx_max_abs_diff, to_onnx

    model, _ = build_model(nb201_cell(Arch.from_index(123)))
    data = to_onnx(model)
    assert onnx_input_shape(data) == (1, 32, 32, 3)
    x = np.random.default_rng(7).standard_normal((1, 32, 32, 3)).astype("float32")
    assert onnx_max_abs_diff(data, model, x) < 1e-4
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        to_onnx(model, batch=0)
    clear_session()
