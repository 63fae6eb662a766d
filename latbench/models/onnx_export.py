"""ONNX export of the Keras NB201 model (for TensorRT's ``trtexec`` on Jetson and SNPE's ONNX converter).

The export goes through Keras 3's own ``model.export(format="onnx")``, which drives ``tf2onnx`` on the
TensorFlow backend (tf2onnx 1.17 installs cleanly next to protobuf 7; see the ``jetson`` extra). The
input signature is fixed to batch 1 (``(1, 32, 32, 3)``, channels-last like the Keras model), so
``trtexec`` needs no ``--shapes`` and builds one static engine.

:func:`onnx_max_abs_diff` runs the exported model in ONNX Runtime and compares it with Keras on the
same input: the tests use it to show the file computes what the Keras model computes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import numpy as np

DEFAULT_OPSET = 13  # TensorRT 8.x (JetPack 4.6 on the Jetson Nano) parses opsets up to 13+; conv/pool/add need no newer
ONNX_INPUT_NAME = "image"


class OnnxExportError(RuntimeError):
    """The model could not be exported (tf2onnx missing, or the conversion failed)."""


def to_onnx(model: keras.Model, batch: int = 1, opset: int = DEFAULT_OPSET) -> bytes:
    """The ONNX bytes of ``model`` with a fixed input of ``(batch, *model.input_shape[1:])``."""
    import keras

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 9:
        raise ValueError(f"opset must be an integer >= 9, got {opset!r}")
    shape = (batch, *tuple(int(d) for d in model.input_shape[1:]))
    spec = [keras.InputSpec(shape=shape, dtype="float32", name=ONNX_INPUT_NAME)]
    with tempfile.TemporaryDirectory(prefix="eagle-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            model.export(str(path), format="onnx", verbose=False, input_signature=spec, opset_version=opset)
        except ImportError as exc:
            raise OnnxExportError(f"ONNX export needs tf2onnx: pip install 'eagle-latbench[jetson]' ({exc})") from exc
        if not path.is_file() or path.stat().st_size == 0:
            raise OnnxExportError(f"Keras wrote no ONNX file at {path}")
        return path.read_bytes()


def onnx_input_shape(onnx_bytes: bytes) -> tuple[int | str, ...]:
    """The shape of the model's (single) input as ONNX Runtime reports it."""
    session = _session(onnx_bytes)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"expected one input, the ONNX model has {len(inputs)}")
    return tuple(inputs[0].shape)


def run_onnx(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Run the model once in ONNX Runtime (CPU) on ``x``; return its first output."""
    import numpy as np

    session = _session(onnx_bytes)
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0])


def onnx_max_abs_diff(onnx_bytes: bytes, model: keras.Model, x: np.ndarray) -> float:
    """Largest absolute difference between ONNX Runtime's and Keras's outputs for ``x``."""
    import numpy as np

    expected = np.asarray(model(x, training=False))
    return float(np.max(np.abs(run_onnx(onnx_bytes, x) - expected)))


def _session(onnx_bytes: bytes) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxExportError(f"checking ONNX files needs onnxruntime: pip install onnxruntime ({exc})") from exc
    return onnxruntime.InferenceSession(bytes(onnx_bytes), providers=["CPUExecutionProvider"])
