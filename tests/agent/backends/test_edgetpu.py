"""Edge TPU backend: the compiler-log parser on captured-format logs, and whole jobs through the fake
``edgetpu_compiler`` with a stand-in for the ``libedgetpu`` delegate (LiteRT's CPU interpreter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eagle_agent.backends import ErrorClass, create_backend
from eagle_agent.backends.edgetpu import (
    CompilerLogError,
    DelegatedRunner,
    EdgeTpuBackend,
    parse_compiler_log,
    usb_edgetpu_present,
)
from eagle_agent.worker import measure_job

from .conftest import FIXTURES, FakeTools, job_failure, make_job

LOADER = "tests.agent.fake_tools.fake_delegate:load"


# -- the log parser -------------------------------------------------------------------------------------
def test_fully_mapped_log() -> None:
    report = parse_compiler_log((FIXTURES / "edgetpu_compiler_full.txt").read_text())
    assert (report.compiler_version, report.ops_on_tpu, report.ops_on_cpu, report.total_ops) == (
        "16.0.384591198",
        53,
        0,
        53,
    )
    assert report.fully_mapped and report.subgraphs == 1
    assert report.operators[0] == ("CONV_2D", 36, "Mapped to Edge TPU")
    assert report.to_info()["operators"][1] == {"op": "ADD", "count": 12, "status": "Mapped to Edge TPU"}


def test_partially_mapped_log() -> None:
    report = parse_compiler_log((FIXTURES / "edgetpu_compiler_partial.txt").read_text())
    assert (report.ops_on_tpu, report.ops_on_cpu, report.total_ops) == (138, 3, 141)
    assert not report.fully_mapped and not report.to_info()["fully_mapped"]
    unmapped = [op for op, _, status in report.operators if status != "Mapped to Edge TPU"]
    assert unmapped == ["MEAN", "FULLY_CONNECTED", "DEQUANTIZE"]


def test_counts_come_from_the_table_or_the_total_when_the_summary_lines_are_absent() -> None:
    table_only = (
        "Model compiled successfully in 3 ms.\nTotal number of operations: 3\n\n"
        "CONV_2D  2  Mapped to Edge TPU\nMEAN  1  Operation is working on an unsupported data type\n"
    )
    report = parse_compiler_log(table_only)
    assert (report.ops_on_tpu, report.ops_on_cpu) == (2, 1)
    total_only = (
        "Edge TPU Compiler version 15.0.340273435\nModel compiled successfully in 3 ms.\n"
        "Total number of operations: 9\n"
    )
    assert (parse_compiler_log(total_only).ops_on_tpu, parse_compiler_log(total_only).ops_on_cpu) == (9, 0)


def test_logs_that_are_not_a_successful_compile_are_refused() -> None:
    with pytest.raises(CompilerLogError, match="no 'Model compiled successfully'"):
        parse_compiler_log((FIXTURES / "edgetpu_compiler_error.txt").read_text())
    with pytest.raises(CompilerLogError, match="cannot tell how many operations"):
        parse_compiler_log(
            "Model compiled successfully in 3 ms.\nModel successfully compiled but not all "
            "operations are supported by the Edge TPU.\n"
        )


# -- jobs -----------------------------------------------------------------------------------------------
@pytest.fixture
def delegate_lib(tmp_path: Path) -> Path:
    path = tmp_path / "libedgetpu.so.1"
    path.write_bytes(b"\x7fELF stand-in")
    return path


def backend_for(delegate_lib: Path, **extra: object) -> EdgeTpuBackend:
    options = {"delegate": str(delegate_lib), "delegate_loader": LOADER, "require_device": False, **extra}
    return EdgeTpuBackend(options)


@pytest.mark.slow
def test_job_compiles_loads_the_delegate_and_records_the_mapping(
    tools: FakeTools, artifacts_workdir: Path, delegate_lib: Path
) -> None:
    from tests.agent.fake_tools import fake_delegate

    backend = backend_for(delegate_lib)
    assert backend.check().ok, backend.check().missing
    result = measure_job(backend, make_job(40, "edgetpu", "int8", runs=20, warmup=0), artifacts_workdir)
    assert len(result["raw_ms"]) == 20 and result["latency_ms"] > 0
    info = result["stats"]["device_info"]
    assert info["edgetpu"]["fully_mapped"] is True and info["edgetpu"]["ops_on_cpu"] == 0
    assert info["warmup_runs"] == 10  # the job asked for none; the first runs load the model into the TPU
    assert result["versions"]["edgetpu_compiler"] == "16.0.384591198"
    assert fake_delegate.LOADED[-1] == str(delegate_lib)
    (call,) = tools.calls("edgetpu_compiler")
    assert call["argv"][:2] == ["-s", "-o"] and call["argv"][3:5] == ["-t", "180"]
    assert not any((artifacts_workdir / "scratch").iterdir())


@pytest.mark.slow
def test_a_model_that_does_not_map_fully_is_measured_with_that_fact(
    tools: FakeTools, artifacts_workdir: Path, delegate_lib: Path
) -> None:
    tools.fault("edgetpu_compiler", "partial")
    result = measure_job(backend_for(delegate_lib), make_job(40, "edgetpu", "int8", runs=10), artifacts_workdir)
    edgetpu = result["stats"]["device_info"]["edgetpu"]
    assert edgetpu["fully_mapped"] is False and edgetpu["ops_on_cpu"] == 3 and edgetpu["subgraphs"] == 2
    assert len(result["raw_ms"]) == 10


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "error_class", "words"),
    [
        ("fail", ErrorClass.UNSUPPORTED, "cannot compile this model (exit code 1): "),
        ("crash", ErrorClass.COMPILE, "killed by signal 11"),
        ("garbage", ErrorClass.COMPILE, "no 'Model compiled successfully'"),
        ("hang", ErrorClass.TIMEOUT, "did not finish within 4 s"),
    ],
)
def test_compiler_failures(
    tools: FakeTools, artifacts_workdir: Path, delegate_lib: Path, fault: str, error_class: ErrorClass, words: str
) -> None:
    tools.fault("edgetpu_compiler", fault)
    backend = backend_for(delegate_lib, compile_timeout_s=2)
    error = job_failure(backend, make_job(40, "edgetpu", "int8"), artifacts_workdir, error_class, words)
    if fault == "fail":
        assert "Model could not be parsed" in error.message  # the compiler's own words
    assert not any((artifacts_workdir / "scratch").iterdir())


@pytest.mark.slow
def test_no_edge_tpu_attached_is_a_runtime_failure(
    tools: FakeTools, artifacts_workdir: Path, delegate_lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EAGLE_FAKE_DELEGATE_FAIL", "1")
    job = make_job(40, "edgetpu", "int8")
    words = f"cannot load the Edge TPU delegate {delegate_lib}: Failed to load delegate"
    job_failure(backend_for(delegate_lib), job, artifacts_workdir, ErrorClass.RUNTIME, words)


@pytest.mark.slow
def test_delegated_runner_runs_an_int8_model_on_the_cpu_interpreter(artifacts_workdir: Path) -> None:
    from eagle_agent.backends._artifacts import model_artifact

    data = model_artifact(make_job(40, "edgetpu", "int8"), artifacts_workdir, "tflite_int8").data
    runner = DelegatedRunner(data, [])
    out = runner(np.zeros((1, 32, 32, 3), np.float32))
    assert runner.input_dtype == np.int8 and out.shape == (1, 10)


def test_check_names_what_is_missing(tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    check = EdgeTpuBackend({"delegate": str(tmp_path / "libedgetpu.so.1")}).check()
    assert "install the Debian package edgetpu-compiler" in check.missing["edgetpu_compiler"]
    assert "does not exist" in check.missing["delegate"]
    assert "no Edge TPU found" in check.missing["edgetpu_device"]
    assert "not in the linker cache" in EdgeTpuBackend({"require_device": False}).check().missing["delegate"]


def test_usb_accelerator_is_found_in_sysfs(tmp_path: Path) -> None:
    for name, vendor, product in (("1-1", "8087", "0024"), ("2-1", "18d1", "9302")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "idVendor").write_text(vendor + "\n")
        (tmp_path / name / "idProduct").write_text(product + "\n")
    assert usb_edgetpu_present(tmp_path)
    (tmp_path / "2-1" / "idProduct").write_text("0001\n")
    assert not usb_edgetpu_present(tmp_path)


def test_options_and_capabilities() -> None:
    assert create_backend("edgetpu", precisions=["int8"]).capabilities() == ["edgetpu:int8"]
    with pytest.raises(ValueError, match="cannot run precision fp32"):
        EdgeTpuBackend(precisions=["fp32"])
    with pytest.raises(ValueError, match="option min_warmup must be an integer"):
        EdgeTpuBackend({"min_warmup": "ten"})
    backend = EdgeTpuBackend({"delegate_loader": "no_such_module:load"})
    with pytest.raises(ValueError, match="cannot load delegate_loader"):
        backend.load()
