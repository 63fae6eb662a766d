"""Runtime adapters: turn a built model into a ``run(x) -> output`` callable the protocol can time.

Each ``run`` blocks until the output is in host memory, so what the protocol times is the whole
inference. TensorFlow and LiteRT are imported only when an adapter is made, so the protocol and the
CLI stay usable (and fast to start) without them.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]


def tf_runner(model: Any, batch_size: int = 1) -> Runner:
    """Run a Keras model through a ``tf.function`` traced once for a fixed ``(batch, *input)`` shape.

    The fixed signature means no retracing while timing; ``.numpy()`` on the output waits for it.
    """
    import tensorflow as tf

    shape = (batch_size, *tuple(model.inputs[0].shape)[1:])
    if any(dim is None for dim in shape):
        raise ValueError(f"the model's input shape must be fully known apart from the batch, got {shape}")
    fn = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec(shape=shape, dtype=tf.float32)],
        reduce_retracing=False,
    )
    fn.get_concrete_function()  # trace now, not in the first warm-up run

    def run(x: np.ndarray) -> np.ndarray:
        if x.shape != shape:
            raise ValueError(f"input shape {x.shape} does not match the model's {shape}")
        out = fn(x)
        if isinstance(out, list | tuple):
            out = out[0]
        return np.asarray(out.numpy())

    return run


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ImportError(
                "no LiteRT interpreter: install ai-edge-litert (pip install 'eagle-latbench[models]') or tflite-runtime"
            ) from exc
    return Interpreter


class LiteRTRunner:
    """A LiteRT interpreter for one ``.tflite`` model with one input and one output.

    Float inputs of an int8/uint8 model are quantised with the input tensor's scale and zero point.
    The quantised array is cached for the last input object seen: the protocol feeds the same input
    to every run of a group, so only the first run of a group pays for it (and the [Q1, Q3] filter
    drops that run if it shows).
    """

    def __init__(self, tflite_bytes: bytes, num_threads: int | None = None) -> None:
        if not isinstance(tflite_bytes, bytes | bytearray) or not tflite_bytes:
            raise ValueError("tflite_bytes must be the non-empty contents of a .tflite model")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
        interpreter_cls = _interpreter_class()
        self.interpreter = interpreter_cls(model_content=bytes(tflite_bytes), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self._in["shape"])
        self.input_dtype = np.dtype(self._in["dtype"])
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"input shape {tuple(x.shape)} does not match the model's {self.input_shape}")
        if np.issubdtype(self.input_dtype, np.integer):
            scale, zero_point = self._in["quantization"]
            if not scale:
                raise ValueError("the model has an integer input without quantisation parameters")
            info = np.iinfo(self.input_dtype)
            prepared = np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(self.input_dtype)
        else:
            prepared = np.ascontiguousarray(x, dtype=self.input_dtype)
        self._last = (x, prepared)
        return prepared

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._in["index"], self._prepare(x))
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self._out["index"]))  # a copy: the buffer is reused

    def dequantize(self, output: np.ndarray) -> np.ndarray:
        """The output as floats (int8 models give quantised outputs)."""
        scale, zero_point = self._out["quantization"]
        if np.issubdtype(output.dtype, np.integer) and scale:
            return (output.astype(np.float32) - zero_point) * scale
        return output.astype(np.float32)


def litert_runner(tflite_bytes: bytes, num_threads: int | None = None) -> LiteRTRunner:
    """A ``run(x)`` callable for a ``.tflite`` model (``num_threads=None``: the runtime's default)."""
    return LiteRTRunner(tflite_bytes, num_threads=num_threads)


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def runtime_versions() -> dict[str, str | None]:
    """Versions of what a measurement depends on (from package metadata; nothing heavy is imported)."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": _dist_version("tensorflow", "tensorflow-cpu"),
        "keras": _dist_version("keras"),
        "litert": _dist_version("ai-edge-litert", "tflite-runtime"),
    }
