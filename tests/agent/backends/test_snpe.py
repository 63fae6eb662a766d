"""SNPE backend: the diagview CSV parser on captured-format output, and whole jobs through the fake
SNPE tools, a fake ``adb`` and a fake phone (a folder here holding the SDK's ``bin/snpe-net-run``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from eagle_agent.backends import ErrorClass, create_backend
from eagle_agent.backends.snpe import DiagFormatError, SnpeBackend, parse_diag_csv
from eagle_agent.worker import measure_job

from .conftest import FIXTURES, FakeTools, install_tool, job_failure, make_job

SERIAL = "R58M12ABCDE"


# -- the parser -----------------------------------------------------------------------------------------
def test_parse_diag_csv_with_a_header() -> None:
    assert parse_diag_csv((FIXTURES / "snpe_diagview.csv").read_text()) == pytest.approx([4.211, 4.187, 4.305, 4.174])


def test_parse_diag_csv_without_a_header_reads_columns_2_and_4_in_microseconds() -> None:
    text = (FIXTURES / "snpe_diagview_noheader.csv").read_text()
    assert parse_diag_csv(text) == pytest.approx([1.502, 1.497, 1.511])


def test_parse_diag_csv_units_and_garbage() -> None:
    header = "Execution_Id,Message_Name,Message_Type,Message_Value,Message_Unit\n"
    assert parse_diag_csv(header + "1,Total Inference Time,TIME,2.5,ms\n") == [2.5]
    with pytest.raises(DiagFormatError, match="is not a time"):
        parse_diag_csv(header + "1,Total Inference Time,TIME,250000,cycles\n")
    with pytest.raises(DiagFormatError, match="is not a number"):
        parse_diag_csv(header + "1,Total Inference Time,TIME,fast,us\n")
    with pytest.raises(DiagFormatError, match="no Total Inference Time rows"):
        parse_diag_csv("%%%% corrupted\n\x00\x01,,,\n")
    with pytest.raises(DiagFormatError, match="empty"):
        parse_diag_csv("\n\n")


# -- options --------------------------------------------------------------------------------------------
def test_target_decides_the_precisions() -> None:
    assert create_backend("snpe", {"target": "dsp"}, ["int8"]).capabilities() == ["snpe:int8"]
    assert SnpeBackend({"target": "gpu"}).capabilities() == ["snpe:fp32", "snpe:fp16"]
    with pytest.raises(ValueError, match="target dsp runs int8, not fp32"):
        SnpeBackend({"target": "dsp"}, ["fp32"])
    with pytest.raises(ValueError, match="option target must be one of cpu, gpu, dsp"):
        SnpeBackend({"target": "npu"})
    with pytest.raises(ValueError, match="device_dir must be an absolute folder"):
        SnpeBackend({"device_dir": "eagle"})


def test_net_run_command() -> None:
    gpu = SnpeBackend({"target": "gpu", "device_snpe_dir": "/data/local/tmp/snpe"})
    command = gpu.net_run_command("/data/local/tmp/eagle/job1", "model.dlc", "fp16")
    assert command.startswith("cd /data/local/tmp/eagle/job1 && export LD_LIBRARY_PATH=/data/local/tmp/snpe/lib:")
    assert 'ADSP_LIBRARY_PATH="/data/local/tmp/snpe/dsp;/system/lib/rfsa/adsp;' in command
    assert command.endswith(
        "/data/local/tmp/snpe/bin/snpe-net-run --container model.dlc --input_list inputs.txt "
        "--output_dir out --perf_profile high_performance --profiling_level basic --use_gpu "
        "--gpu_mode float16"
    )
    dsp = SnpeBackend({"target": "dsp"}, ["int8"]).net_run_command("/data/x/y", "model.dlc", "int8")
    assert dsp.endswith("--use_dsp") and "--gpu_mode" not in dsp


# -- jobs -----------------------------------------------------------------------------------------------
@pytest.fixture
def phone(tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake phone: the SDK's snpe-net-run in <phone>/snpe/bin, jobs under <phone>/eagle."""
    root = tmp_path / "phone"
    install_tool("snpe-net-run", root / "snpe" / "bin")
    (root / "snpe" / "lib").mkdir()
    monkeypatch.setenv("EAGLE_FAKE_ADB_DEVICES", f"{SERIAL}:device,emulator-5554:offline")
    return root


def options(phone: Path, **extra: object) -> dict[str, object]:
    return {"serial": SERIAL, "device_snpe_dir": str(phone / "snpe"), "device_dir": str(phone / "eagle"), **extra}


def jobs_left_on(phone: Path) -> list[Path]:
    return list((phone / "eagle").iterdir()) if (phone / "eagle").exists() else []


@pytest.fixture(scope="module")
def source_models(artifacts_workdir: Path) -> Path:
    """The TFLite / ONNX models these tests convert, made once in the shared cache."""
    from eagle_agent.backends._artifacts import model_artifact

    model_artifact(make_job(45, "snpe"), artifacts_workdir, "tflite_fp32")
    model_artifact(make_job(3, "snpe"), artifacts_workdir, "onnx")
    return artifacts_workdir


@pytest.fixture
def workdir(source_models: Path, tmp_path: Path) -> Path:
    """A workdir with the shared TFLite/ONNX models but no DLCs, so the converters run."""
    artifacts_workdir = source_models
    path = tmp_path / "workdir"
    (path / "artifacts").mkdir(parents=True)
    for model in (artifacts_workdir / "artifacts").glob("*"):
        if model.suffix in (".tflite", ".onnx"):
            shutil.copy(model, path / "artifacts" / model.name)
    return path


@pytest.mark.slow
def test_gpu_job_converts_pushes_runs_reads_the_log_and_cleans_the_phone(
    tools: FakeTools, phone: Path, workdir: Path
) -> None:
    backend = SnpeBackend(options(phone), ["fp32", "fp16"])
    check = backend.check()
    assert check.ok, check.missing
    assert check.found["phone"] == SERIAL and check.found["snpe-net-run"].endswith("snpe-net-run on the phone")
    result = measure_job(backend, make_job(45, "snpe", "fp16", runs=10, warmup=2, group_size=5), workdir)
    assert len(result["raw_ms"]) == 10 and 1 < result["latency_ms"] < 10
    (net_run,) = tools.calls("snpe-net-run")
    assert net_run["argv"][-3:] == ["--use_gpu", "--gpu_mode", "float16"]
    pushed = [c["argv"][-2] for c in tools.calls("adb") if "push" in c["argv"]]
    assert sorted(Path(p).name for p in pushed) == [
        "group0.raw",
        "group1.raw",
        "inputs.txt",
        "model.dlc",
        "warmup0.raw",
    ]
    assert all(c["argv"][:2] == ["-s", SERIAL] for c in tools.calls("adb") if c["argv"][0] != "devices")
    assert len(tools.calls("snpe-tflite-to-dlc")) == 1 and len(tools.calls("snpe-diagview")) == 1
    assert not jobs_left_on(phone), "the job folder on the phone was not removed"
    assert list((workdir / "artifacts").glob("*_fp32.dlc"))
    measure_job(backend, make_job(45, "snpe", "fp32", runs=10, warmup=0), workdir)
    assert len(tools.calls("snpe-tflite-to-dlc")) == 1  # the DLC came from the cache


@pytest.mark.slow
def test_dsp_job_quantises_the_dlc(tools: FakeTools, phone: Path, workdir: Path) -> None:
    backend = SnpeBackend(options(phone, target="dsp", calibration_inputs=3), ["int8"])
    result = measure_job(backend, make_job(45, "snpe", "int8", runs=10, warmup=1), workdir)
    assert len(result["raw_ms"]) == 10 and result["versions"]["snpe_target"] == "dsp"
    (quantize,) = tools.calls("snpe-dlc-quantize")
    calib = Path(quantize["argv"][quantize["argv"].index("--input_list") + 1])
    assert not calib.exists()  # the job's local folder is gone
    assert tools.calls("snpe-net-run")[0]["argv"][-1] == "--use_dsp"
    assert list((workdir / "artifacts").glob("*_int8.dlc")) and not jobs_left_on(phone)


@pytest.mark.slow
def test_onnx_converter(tools: FakeTools, phone: Path, workdir: Path) -> None:
    backend = SnpeBackend(options(phone, target="cpu", converter="onnx"))
    assert len(measure_job(backend, make_job(3, "snpe", "fp32", runs=10, warmup=0), workdir)["raw_ms"]) == 10
    assert len(tools.calls("snpe-onnx-to-dlc")) == 1 and not tools.calls("snpe-tflite-to-dlc")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "fault", "error_class", "words"),
    [
        ("snpe-tflite-to-dlc", "fail", ErrorClass.CONVERT, "Conversion FAILED: Encountered Error"),
        ("snpe-tflite-to-dlc", "unsupported", ErrorClass.UNSUPPORTED, "Op type FAKE_OP is not supported"),
        ("snpe-tflite-to-dlc", "crash", ErrorClass.CONVERT, "killed by signal SIGSEGV"),
        ("snpe-net-run", "fail", ErrorClass.UNSUPPORTED, "unsupported layer on GPU"),
        ("snpe-net-run", "crash", ErrorClass.RUNTIME, "killed by signal SIGSEGV"),
        ("snpe-net-run", "hang", ErrorClass.TIMEOUT, "snpe-net-run ran past 3 s on the device R58M12ABCDE"),
        ("snpe-diagview", "garbage", ErrorClass.RUNTIME, "no Total Inference Time rows"),
        ("adb", "offline", ErrorClass.RUNTIME, "adb: device offline"),
    ],
)
def test_tool_failures_are_classified_and_the_phone_cleaned(
    tools: FakeTools, phone: Path, workdir: Path, tool: str, fault: str, error_class: ErrorClass, words: str
) -> None:
    tools.fault(tool, fault)
    backend = SnpeBackend(options(phone, run_timeout_s=3))
    job_failure(backend, make_job(45, "snpe", "fp32", runs=10, warmup=1), workdir, error_class, words)
    assert not jobs_left_on(phone) and not any((workdir / "scratch").iterdir())


def test_check_names_what_is_missing(
    tools: FakeTools, phone: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_sdk = SnpeBackend(options(tmp_path / "elsewhere", target="dsp"), ["int8"]).check()
    assert "is not on the phone: push the SDK" in no_sdk.missing["snpe-net-run"]
    monkeypatch.setenv("EAGLE_FAKE_ADB_DEVICES", f"{SERIAL}:unauthorized")
    assert "accept the USB debugging prompt" in SnpeBackend(options(phone)).check().missing["phone"]
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    bare = SnpeBackend({"target": "dsp", "adb": str(tmp_path / "adb")}, ["int8"]).check()
    for tool in ("snpe-tflite-to-dlc", "snpe-diagview", "snpe-dlc-quantize", "adb"):
        assert tool in bare.missing, tool
