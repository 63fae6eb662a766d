"""Exporters: TensorFlow SavedModel and TFLite flatbuffers at fp32, fp16 and int8.

TFLite conversion goes through ``TFLiteConverter.from_keras_model``. (``from_concrete_functions`` on a
Keras 3 model leaves the variables out of the graph and the converted model computes NaN.)
Exporting the SavedModel is most of a conversion's time, so :func:`tflite_variants` exports once and
converts several precisions from it.

Precisions:

* ``fp32``: plain float model.
* ``fp16``: float16 weights (dequantised to fp32 on CPU; GPU delegates run them in fp16).
* ``int8``: full integer quantisation with int8 input and output tensors and only
  ``TFLITE_BUILTINS_INT8`` ops, as the Edge TPU compiler and SNPE's DSP path require. Calibrated on a
  representative dataset of random inputs of the model's input shape (latency does not depend on the
  quantisation ranges).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
REPRESENTATIVE_SAMPLES = 16


def export_saved_model(model: keras.Model, directory: str | Path) -> Path:
    """Write ``model`` as a TensorFlow SavedModel (serving endpoint ``serve``) and return its folder."""
    path = Path(directory)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty; give a new folder for the SavedModel")
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def to_tflite(
    model: keras.Model,
    precision: str = "fp32",
    seed: int = 0,
    samples: int = REPRESENTATIVE_SAMPLES,
) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer at ``precision`` (``fp32``, ``fp16`` or ``int8``).

    ``seed`` and ``samples`` shape the random representative dataset used for ``int8``.
    """
    _check_precision(precision)
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return _convert(converter, precision, _input_shape(model), seed, samples)


def tflite_variants(
    model: keras.Model,
    precisions: tuple[str, ...] = PRECISIONS,
    seed: int = 0,
    samples: int = REPRESENTATIVE_SAMPLES,
) -> dict[str, bytes]:
    """Several precisions of one model, exporting the SavedModel once (most of a conversion's time)."""
    for precision in precisions:
        _check_precision(precision)
    import tensorflow as tf

    shape = _input_shape(model)
    with tempfile.TemporaryDirectory(prefix="eagle-savedmodel-") as tmp:
        directory = export_saved_model(model, Path(tmp) / "model")
        return {
            p: _convert(tf.lite.TFLiteConverter.from_saved_model(str(directory)), p, shape, seed, samples)
            for p in precisions
        }


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def _input_shape(model: keras.Model) -> tuple[int, ...]:
    return tuple(int(d) for d in model.input_shape[1:])


def _convert(converter: Any, precision: str, shape: tuple[int, ...], seed: int, samples: int) -> bytes:
    import tensorflow as tf

    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative(shape, seed, samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    # Keras' export inside the converter prints every captured variable to stdout, which would break
    # callers printing one JSON object (``eagle measure --json``): keep it off stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


def _representative(shape: tuple[int, ...], seed: int, samples: int) -> Iterator[list[object]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(samples):
        yield [rng.standard_normal((1, *shape)).astype("float32")]


def tflite_interpreter(content: bytes, num_threads: int | None = None) -> object:
    """A TFLite interpreter for ``content``: LiteRT (``ai_edge_litert``), else ``tflite_runtime``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ImportError(
                "no TFLite runtime: install ai-edge-litert (pip install 'eagle-latbench[models]') or tflite-runtime"
            ) from exc
    return Interpreter(model_content=content, num_threads=num_threads)
