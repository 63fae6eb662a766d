"""Jetson / TensorRT backend: the exportTimes parser on captured-format traces, and whole jobs driven
through the fake ``trtexec`` on this machine and behind the fake ``ssh``/``scp``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eagle_agent.backends import ErrorClass, create_backend
from eagle_agent.backends.jetson import (
    _TRT_VERSION_RE,
    JetsonTfTrtBackend,
    JetsonTrtBackend,
    TimesFormatError,
    parse_times,
)
from eagle_agent.worker import measure_job
from latbench.protocol import ProtocolParams

from .conftest import FIXTURES, FakeTools, job_failure, make_job


# -- the parser -----------------------------------------------------------------------------------------
def test_parse_times_tensorrt8_trace() -> None:
    text = (FIXTURES / "trtexec_times_trt8.json").read_text()
    assert parse_times(text) == [3.5899, 3.568, 3.5782, 4.0015, 3.57, 3.576]
    assert parse_times(text, "compute") == [3.5565, 3.5351, 3.5453, 3.9686, 3.5371, 3.5431]


def test_parse_times_tensorrt7_trace() -> None:
    assert parse_times((FIXTURES / "trtexec_times_trt7.json").read_text()) == [4.2082, 4.1979, 4.2014]


def test_parse_times_skips_a_count_header_and_rejects_what_is_not_a_trace() -> None:
    assert parse_times('[{"count": 2}, {"latencyMs": 1.5}, {"latencyMs": 2}]') == [1.5, 2.0]
    for bad, message in [
        ("\x00garbage{{", "not JSON"),
        ('{"latencyMs": 1}', "must be a JSON list"),
        ("[]", "holds no inferences"),
        ('[{"computeMs": 1}]', "entry 0 of the times file has no latencyMs"),
        ('[{"latencyMs": -1}]', "is not a time in ms"),
        ('[{"latencyMs": "fast"}]', "is not a time in ms"),
    ]:
        with pytest.raises(TimesFormatError, match=message):
            parse_times(bad)
    with pytest.raises(ValueError, match="metric must be one of"):
        parse_times("[]", "wall")


def test_trt_version_from_the_log() -> None:
    match = _TRT_VERSION_RE.search((FIXTURES / "trtexec_log.txt").read_text())
    assert match is not None and match.group(1) == "8201"


def test_trtexec_command_asks_for_exactly_the_protocols_inferences() -> None:
    backend = JetsonTrtBackend({"trtexec": "/opt/trt/bin/trtexec"}, ["fp32", "fp16"])
    command = backend.trtexec_command("/tmp/eagle-trt-1", "fp16", ProtocolParams(runs=30, warmup=5, group_size=10))
    assert command.startswith("cd /tmp/eagle-trt-1 && /opt/trt/bin/trtexec --onnx=/tmp/eagle-trt-1/model.onnx --fp16 ")
    for flag in (
        "--iterations=35",
        "--warmUp=0",
        "--duration=0",
        "--avgRuns=10",
        "--exportTimes=/tmp/eagle-trt-1/times.json",
    ):
        assert flag in command
    assert "--fp16" not in backend.trtexec_command("/tmp/x1/y", "fp32", ProtocolParams())
    assert "command -v trtexec || echo /usr/src/tensorrt/bin/trtexec" in JetsonTrtBackend().trtexec_command(
        "/tmp/x1/y", "fp32", ProtocolParams()
    )


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"unknown option.*hots"):
        JetsonTrtBackend({"hots": "x"})
    with pytest.raises(ValueError, match="option key needs host"):
        JetsonTrtBackend({"key": "~/.ssh/id"})
    with pytest.raises(ValueError, match="remote_dir must be an absolute path"):
        JetsonTrtBackend({"remote_dir": "tmp"})
    with pytest.raises(ValueError, match="cannot run precision int8"):
        create_backend("jetson_trt", precisions=["int8"])
    assert create_backend("jetson_trt", precisions=["fp32", "fp16"]).capabilities() == [
        "tensorrt:fp32",
        "tensorrt:fp16",
    ]


# -- jobs through the fake trtexec ----------------------------------------------------------------------
def remote_leftovers(remote_dir: Path) -> list[Path]:
    return list(remote_dir.glob("eagle-trt-*")) if remote_dir.exists() else []


@pytest.mark.slow
def test_local_job_runs_trtexec_and_applies_the_protocol(
    tools: FakeTools, artifacts_workdir: Path, tmp_path: Path
) -> None:
    board = tmp_path / "board"
    backend = JetsonTrtBackend({"remote_dir": str(board)}, ["fp32", "fp16"])
    assert backend.check().ok, backend.check().missing
    result = measure_job(backend, make_job(3, "tensorrt", "fp16", runs=20, warmup=3), artifacts_workdir)
    assert len(result["raw_ms"]) == 20 and 0 < result["latency_ms"] < 100
    assert result["versions"]["tensorrt"] == "8201" and result["versions"]["tf2onnx"]
    (call,) = tools.calls("trtexec")
    assert "--fp16" in call["argv"] and "--iterations=23" in call["argv"]
    assert not remote_leftovers(board), "the work folder on the board was not removed"
    assert not any((artifacts_workdir / "scratch").iterdir())
    assert list((artifacts_workdir / "artifacts").glob("*_fp32.onnx"))


@pytest.mark.slow
def test_job_over_ssh_pushes_runs_and_cleans_up(
    tools: FakeTools, artifacts_workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EAGLE_FAKE_SSH_HOSTS", "nano.lab")
    key = tmp_path / "id_ed25519"
    key.write_text("key")
    board = tmp_path / "board"
    options = {"host": "nano.lab", "user": "lab", "key": str(key), "remote_dir": str(board)}
    backend = JetsonTrtBackend(options)
    check = backend.check()
    assert check.ok and "on lab@nano.lab (ssh)" in check.found["trtexec"]
    assert backend.hardware() == "NVIDIA Jetson Nano (lab@nano.lab (ssh))"
    result = measure_job(backend, make_job(3, runs=10, warmup=1), artifacts_workdir)
    assert len(result["raw_ms"]) == 10
    ssh_commands = [c["argv"][-1] for c in tools.calls("ssh")]
    assert any("mktemp -d" in c for c in ssh_commands)
    assert any("--onnx=" in c and "--iterations=11" in c for c in ssh_commands)
    assert any(c.startswith("rm -rf ") for c in ssh_commands)
    scp_targets = [c["argv"][-1] for c in tools.calls("scp")]
    assert any(t.startswith("lab@nano.lab:") and t.endswith("/model.onnx") for t in scp_targets)
    assert not remote_leftovers(board)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "error_class", "words"),
    [
        ("unsupported", ErrorClass.UNSUPPORTED, "No importer registered for op: FakeOp"),
        ("crash", ErrorClass.RUNTIME, "exit code 139: killed by signal SIGSEGV"),
        ("garbage", ErrorClass.RUNTIME, "times.json: the times file is not JSON"),
        ("short", ErrorClass.RUNTIME, "trtexec timed 9 inferences, 12 were asked for"),
        ("hang", ErrorClass.TIMEOUT, "trtexec ran past 3 s on this machine and was killed there"),
    ],
)
def test_trtexec_failures_are_classified_and_cleaned_up(
    tools: FakeTools, artifacts_workdir: Path, tmp_path: Path, fault: str, error_class: ErrorClass, words: str
) -> None:
    board = tmp_path / "board"
    backend = JetsonTrtBackend({"remote_dir": str(board), "trtexec_timeout_s": 3})
    tools.fault("trtexec", fault)
    job_failure(backend, make_job(3, runs=10, warmup=2), artifacts_workdir, error_class, words)
    assert not remote_leftovers(board)


@pytest.mark.slow
def test_unreachable_board_is_a_runtime_failure(
    tools: FakeTools, artifacts_workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EAGLE_FAKE_SSH_HOSTS", "elsewhere")
    backend = JetsonTrtBackend({"host": "nano.lab", "remote_dir": str(tmp_path)})
    assert "Could not resolve hostname nano.lab" in backend.check().missing["board"]
    job_failure(backend, make_job(3), artifacts_workdir, ErrorClass.RUNTIME, "ssh to nano.lab failed")


def test_check_names_what_is_missing(tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no fake trtexec, no ssh
    local = JetsonTrtBackend({"trtexec": str(tmp_path / "trtexec")}).check()
    assert not local.ok and "no trtexec on this machine" in local.missing["trtexec"]
    remote = JetsonTrtBackend({"host": "nano.lab", "ssh": str(tmp_path / "ssh"), "key": str(tmp_path / "k")}).check()
    assert "install openssh-client" in remote.missing["ssh"]
    assert "does not exist (option key)" in remote.missing["ssh key"]
    assert json.dumps(remote.to_dict())  # what Register carries


def test_tftrt_backend_says_tensorrt_is_missing_here() -> None:
    backend = JetsonTfTrtBackend(precisions=["fp16"])
    assert backend.capabilities() == ["tftrt:fp16"]
    check = backend.check()
    assert not check.ok and "libnvinfer" in check.missing["tensorrt"]
