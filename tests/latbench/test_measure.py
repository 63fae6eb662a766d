"""Runtimes, ``measure_arch`` and ``eagle measure``: option checks (fast) and real builds (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latbench import runtimes
from latbench.cli import main
from latbench.measure import MeasureError, check_options, input_factory, measure_arch, valid_cell
from latbench.nb201 import Arch
from latbench.protocol import ProtocolParams

REPO = Path(__file__).resolve().parents[2]
INVALID = Arch.from_op_code("000000")  # every edge "none": nothing reaches the output
SMALL = ProtocolParams(runs=20, warmup=2)


# -- option checks (nothing is built) ---------------------------------------------------------------
def test_invalid_cell_is_rejected_before_building() -> None:
    with pytest.raises(MeasureError, match=r"invalid.*no path"):
        valid_cell(INVALID)
    with pytest.raises(MeasureError, match="000000"):
        measure_arch(INVALID, "litert", params=SMALL)


@pytest.mark.parametrize(
    ("runtime", "precision", "message"),
    [
        ("tf", "fp16", "fp32 only"),
        ("tf", "int8", "fp32 only"),
        ("onnx", "fp32", "unknown runtime 'onnx'"),
        ("litert", "int4", "unknown precision 'int4'"),
    ],
)
def test_bad_runtime_or_precision(runtime: str, precision: str, message: str) -> None:
    with pytest.raises(MeasureError, match=message):
        check_options(runtime, precision)
    with pytest.raises(MeasureError, match=message):
        measure_arch(0, runtime, precision, params=SMALL)


def test_inputs_are_fresh_batch1_float32_and_reproducible() -> None:
    make = input_factory(seed=3)
    a, b = make(), make()
    assert a.shape == (1, 32, 32, 3) and a.dtype == np.float32
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(input_factory(seed=3)(), a)


def test_runtime_versions_names_every_runtime() -> None:
    versions = runtimes.runtime_versions()
    assert set(versions) >= {"tensorflow", "keras", "litert", "numpy", "python"}
    assert versions["tensorflow"] and versions["litert"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["measure", "op:000000", "--runtime", "litert", "--json"], "invalid"),
        (["measure", "99999", "--runtime", "tf", "--json"], "index must be in 0..15624"),
        (["measure", "|bogus|", "--runtime", "tf", "--json"], "arch string"),
        (["measure", "0", "--runtime", "tf", "--precision", "int8", "--json"], "fp32 only"),
        (["measure", "0", "--runtime", "litert", "--runs", "0", "--json"], "runs must be >= 1"),
        (["measure", "0", "--runtime", "litert", "--warmup", "-1", "--json"], "warmup must be >= 0"),
        (["measure", "0", "--runtime", "litert", "--threads", "0", "--json"], "--threads"),
    ],
)
def test_cli_user_errors_are_one_json_error(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert message in json.loads(out[0])["error"]


def test_cli_requires_a_runtime(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["measure", "0"])
    assert "--runtime" in capsys.readouterr().err


# -- runtimes on a tiny model -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.backend.clear_session()
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=keras.initializers.HeNormal(seed=1))(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, kernel_initializer=keras.initializers.HeNormal(seed=2))(x)
    yield keras.Model(inputs, outputs)
    keras.backend.clear_session()


def _convert(model, int8: bool = False) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        make = input_factory(seed=9)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([make()] for _ in range(16))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.mark.slow
def test_tf_and_litert_runners_agree_with_keras(tiny_model) -> None:
    x = input_factory(seed=0)()
    expected = tiny_model(x).numpy()
    run_tf = runtimes.tf_runner(tiny_model)
    np.testing.assert_allclose(run_tf(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="input shape"):
        run_tf(np.zeros((2, 32, 32, 3), dtype=np.float32))
    run_lite = runtimes.litert_runner(_convert(tiny_model), num_threads=1)
    assert run_lite.input_shape == (1, 32, 32, 3)
    np.testing.assert_allclose(run_lite(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_litert_runner_quantises_float_input_for_int8_models(tiny_model) -> None:
    x = input_factory(seed=0)()
    expected = tiny_model(x).numpy()
    run = runtimes.litert_runner(_convert(tiny_model, int8=True))
    assert run.input_dtype == np.int8
    out = run(x)
    assert out.dtype == np.int8
    got = run.dequantize(out)
    # int8 error is a few quantisation steps of the output range
    assert np.abs(got - expected).max() < 0.1 * (np.abs(expected).max() + 1e-3)
    assert np.argmax(got) == np.argmax(expected)


def test_litert_runner_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        runtimes.litert_runner(b"")
    with pytest.raises(ValueError, match="num_threads"):
        runtimes.litert_runner(b"not a model", num_threads=0)


# -- real NB201 models ------------------------------------------------------------------------------
def _check_report(report: dict, runtime: str, precision: str, runs: int) -> None:
    arch = Arch.from_index(report["index"])
    assert report["arch_str"] == arch.arch_str and report["op_code"] == arch.op_code
    assert report["canonical_key"] == valid_cell(arch).canonical_key
    assert (report["runtime"], report["precision"]) == (runtime, precision)
    stats = report["stats"]
    assert stats["runs"] == runs and "raw_ms" not in stats
    assert 0 < stats["min_ms"] <= report["latency_ms"] <= stats["max_ms"]
    assert report["build_s"] > 0
    assert report["versions"]["tensorflow"]
    json.dumps(report)  # JSON-safe


@pytest.mark.slow
def test_measure_tf_fp32() -> None:
    report = measure_arch(0, "tf", params=SMALL)
    _check_report(report, "tf", "fp32", 20)
    assert report["convert_s"] is None


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_measure_litert(precision: str) -> None:
    arch = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    report = measure_arch(arch, "litert", precision, params=SMALL, num_threads=1, include_raw=True)
    _check_report(
        {**report, "stats": {k: v for k, v in report["stats"].items() if k != "raw_ms"}},
        "litert",
        precision,
        20,
    )
    assert report["convert_s"] > 0
    assert len(report["stats"]["raw_ms"]) == 20


@pytest.mark.slow
def test_cli_measure_end_to_end() -> None:
    bin_dir = Path(sys.executable).parent
    eagle = bin_dir / "eagle"
    cmd = (
        [str(eagle)]
        if eagle.exists()
        else [sys.executable, "-c", "import sys; from latbench.cli import main; sys.exit(main())"]
    )
    proc = subprocess.run(
        [*cmd, "measure", "0", "--runtime", "litert", "--runs", "50", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # one JSON object, nothing else on stdout
    report = json.loads(lines[0])
    _check_report(report, "litert", "fp32", 50)
    assert report["index"] == 0
    assert report["stats"]["groups"] == 5
    assert report["params"] == {"runs": 50, "warmup": 10, "group_size": 10, "pause_s": 0.0}
