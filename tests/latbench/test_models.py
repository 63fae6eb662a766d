"""Keras NB201 builder, exporters and per-op models (latbench.models)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from latbench.cost import InvalidCellError, network_cost, op_costs
from latbench.graph import nb201_cell, nb201_unpruned
from latbench.models.export import PRECISIONS, export_saved_model, tflite_interpreter, tflite_variants, to_tflite
from latbench.models.layerwise import op_specs
from latbench.nb201 import Arch, all_archs

SMALL = "421211"  # index 0: 2 conv1x1 + 1 avg pool per cell, quick to convert


def _random_valid_archs(n: int, seed: int = 7) -> list[Arch]:
    rng = random.Random(seed)
    archs = all_archs()
    picked: list[Arch] = []
    while len(picked) < n:
        arch = rng.choice(archs)
        if nb201_cell(arch).valid:
            picked.append(arch)
    return picked


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _run_tflite(content: bytes, x: np.ndarray) -> tuple[np.ndarray, dict]:
    interpreter = tflite_interpreter(content)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y, inp


# -- no TensorFlow needed -----------------------------------------------------------------------------
def test_invalid_cell_and_bad_precision_are_rejected_early() -> None:
    from latbench.models.keras_nb201 import build_nb201

    with pytest.raises(InvalidCellError):
        build_nb201(nb201_cell(Arch.from_op_code("000000")))
    with pytest.raises(ValueError, match="multiple of 4"):
        build_nb201(nb201_cell(Arch.from_op_code(SMALL)), input_shape=(30, 30, 3))
    with pytest.raises(ValueError, match=r"unknown precision 'int4'.*fp32, fp16, int8"):
        to_tflite(object(), "int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown precision"):
        tflite_variants(object(), ("fp32", "bf16"))  # type: ignore[arg-type]


def test_op_specs_dedupe_counts() -> None:
    cell = nb201_cell(Arch.from_op_code("333333"))  # 6 conv3x3 per cell
    specs = op_specs(cell)
    assert [(s.kind, s.input_shape, s.count) for s in specs] == [
        ("stem", (32, 32, 3), 1),
        ("nor_conv_3x3", (32, 32, 16), 30),
        ("reduction", (32, 32, 16), 1),
        ("nor_conv_3x3", (16, 16, 32), 30),
        ("reduction", (16, 16, 32), 1),
        ("nor_conv_3x3", (8, 8, 64), 30),
        ("head", (8, 8, 64), 1),
    ]
    flat = op_specs(cell, dedupe=False)
    assert len(flat) == len(op_costs(cell)) == 1 + 90 + 2 + 1
    assert all(s.count == 1 for s in flat)
    assert sum(s.count * s.params for s in specs) == network_cost(cell).params
    assert sum(s.count * s.flops for s in specs) == network_cost(cell).flops


# -- TensorFlow ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_trainable_params_match_analytic_count() -> None:
    import keras

    from latbench.models.keras_nb201 import build_nb201, trainable_params

    cells = [nb201_cell(a) for a in _random_valid_archs(20)]
    cells += [nb201_cell(Arch.from_op_code(code)) for code in ("000100", "333333", SMALL, "444444")]
    # Unpruned cells, including invalid archs (000000, 133300 has a dead conv branch).
    cells += [nb201_unpruned(Arch.from_op_code(code)) for code in ("000000", "133300", "123412")]
    for cell in cells:
        keras.backend.clear_session()
        model = build_nb201(cell, calibrate=False)
        cost = network_cost(cell)
        assert trainable_params(model) == cost.params
        bn_channels = sum(
            layer.gamma.shape[0] for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
        )
        assert model.count_params() == cost.params + 2 * bn_channels  # + moving mean / variance
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        conv_nodes = sum(1 for n in cell.op_nodes if str(cell.labels[n]).startswith("nor_conv"))
        assert len(convs) == 1 + 15 * conv_nodes + 2 * 3  # stem, cells, reductions (a, b, shortcut)
        assert model.output_shape == (None, 10)


@pytest.mark.slow
def test_unpruned_zero_and_skip_semantics_and_seed() -> None:
    import keras

    from latbench.models.keras_nb201 import build_nb201

    x = np.random.default_rng(3).standard_normal((2, 32, 32, 3)).astype("float32")
    # 100100: node1 = skip(x), node3 = skip(x) + none(node1) = x; the pruned cell is input -> output.
    # No layer of either cell draws a seed, so all three networks get identical weights.
    outputs = []
    for cell in (
        nb201_unpruned(Arch.from_op_code("100100")),
        nb201_cell(Arch.from_op_code("100100")),
        nb201_cell(Arch.from_op_code("000100")),
    ):
        keras.backend.clear_session()
        outputs.append(build_nb201(cell, seed=5)(x, training=False).numpy())
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
    np.testing.assert_allclose(outputs[1], outputs[2], atol=1e-6)

    cell = nb201_cell(Arch.from_op_code("333333"))
    keras.backend.clear_session()
    a = build_nb201(cell, seed=1)
    b = build_nb201(cell, seed=1)
    c = build_nb201(cell, seed=2)
    ya, yb, yc = (m(x, training=False).numpy() for m in (a, b, c))
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(ya, yc)
    # Calibrated BatchNorm keeps the deepest network's activations O(1) (uncalibrated: ~1e4).
    assert np.abs(ya).max() < 50
    raw = build_nb201(cell, seed=1, calibrate=False)(x, training=False).numpy()
    assert np.abs(raw).max() > 100 * np.abs(ya).max()


@pytest.mark.slow
def test_exports_match_keras(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    from latbench.models.keras_nb201 import build_nb201

    keras.backend.clear_session()
    model = build_nb201(nb201_cell(Arch.from_op_code(SMALL)))
    x = np.random.default_rng(11).standard_normal((1, 32, 32, 3)).astype("float32")
    expected = model(x, training=False).numpy()
    scale = float(np.abs(expected).max())
    assert scale > 0.1

    saved = export_saved_model(model, tmp_path / "sm")
    loaded = tf.saved_model.load(str(saved))  # keep a reference: its variables die with it
    np.testing.assert_allclose(loaded.serve(x).numpy(), expected, atol=1e-4)
    with pytest.raises(FileExistsError):
        export_saved_model(model, tmp_path / "sm")

    fp32, _ = _run_tflite(to_tflite(model, "fp32"), x)
    np.testing.assert_allclose(fp32, expected, atol=1e-4)

    variants = tflite_variants(model)
    assert set(variants) == set(PRECISIONS)
    assert len(variants["fp16"]) < 0.6 * len(variants["fp32"])  # weights stored as float16
    assert len(variants["int8"]) < 0.4 * len(variants["fp32"])
    y32, _ = _run_tflite(variants["fp32"], x)
    np.testing.assert_allclose(y32, expected, atol=1e-4)
    y16, inp16 = _run_tflite(variants["fp16"], x)
    assert inp16["dtype"] == np.float32
    np.testing.assert_allclose(y16, expected, atol=0.05 * scale)
    y8, inp8 = _run_tflite(variants["int8"], x)
    assert inp8["dtype"] == np.int8 and y8.shape == (1, 10)
    assert np.isfinite(y8).all()
    assert np.abs(y8 - expected).max() < 0.5 * scale  # coarse: random calibration data


@pytest.mark.slow
def test_memory_stays_flat_over_many_conversions() -> None:
    import gc

    import keras

    from latbench.models.keras_nb201 import build_nb201

    # Measured (2 cores, TF 2.21): RSS wanders by up to ~150 MB from model to model with no trend over
    # 15 full networks; a leak of each model's graph would add tens of MB per model, i.e. hundreds here.
    rss = []
    for arch in _random_valid_archs(12, seed=3):
        keras.backend.clear_session()
        model = build_nb201(nb201_cell(arch), cells_per_stage=1)
        content = to_tflite(model, "fp32")
        assert len(content) > 10_000
        del model, content
        gc.collect()
        rss.append(_rss_mb())
    baseline = max(rss[:3])
    assert max(rss[3:]) - baseline < 250, rss


@pytest.mark.slow
def test_per_op_models_shapes_and_params() -> None:
    import keras

    from latbench.models.keras_nb201 import trainable_params
    from latbench.models.layerwise import per_op_models

    keras.backend.clear_session()
    for code in (SMALL, "123412"):
        cell = nb201_cell(Arch.from_op_code(code))
        ops = per_op_models(cell)
        assert sum(op.count for op in ops) == len(op_costs(cell))
        assert len({(op.kind, op.input_shape, op.stride) for op in ops}) == len(ops)
        total = 0
        for op in ops:
            assert op.model.input_shape == (None, *op.input_shape)
            assert op.model.output_shape == (None, *op.spec.output_shape)
            assert trainable_params(op.model) == op.spec.params
            total += op.count * trainable_params(op.model)
        assert total == network_cost(cell).params
    # A tiny op converts and runs like any model.
    conv = next(op for op in ops if op.kind == "nor_conv_3x3")
    x = np.random.default_rng(0).standard_normal((1, *conv.input_shape)).astype("float32")
    y, _ = _run_tflite(to_tflite(conv.model, "fp32"), x)
    np.testing.assert_allclose(y, conv.model(x, training=False).numpy(), atol=1e-4)
