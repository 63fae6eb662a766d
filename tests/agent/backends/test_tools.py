"""eagle_agent.backends.tools: running tools (timeouts kill the whole group, failures carry the tool's
words and a class), options, ssh/scp and adb helpers against the fake tools."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from eagle_agent.backends import BackendError, ErrorClass
from eagle_agent.backends.tools import (
    Adb,
    Classifier,
    Options,
    Shell,
    SshShell,
    find_tool,
    nvidia_gpus,
    parse_adb_devices,
    require_tool,
    run_tool,
)

from .conftest import FIXTURES, FakeTools


# -- run_tool ------------------------------------------------------------------------------------------
def test_run_tool_returns_output_and_status() -> None:
    result = run_tool(["/bin/sh", "-c", "echo out; echo err >&2"], timeout_s=10, error_class=ErrorClass.RUNTIME)
    assert (result.returncode, result.stdout.strip(), result.stderr.strip()) == (0, "out", "err")


def test_failure_carries_the_tools_last_words_and_the_steps_class() -> None:
    with pytest.raises(BackendError) as exc:
        run_tool(
            ["/bin/sh", "-c", "echo progress; echo 'ERROR: bad op' >&2; exit 3"],
            timeout_s=10,
            error_class=ErrorClass.CONVERT,
            what="converting",
        )
    assert exc.value.error_class == ErrorClass.CONVERT
    assert "converting (sh) failed (exit code 3): ERROR: bad op" in exc.value.message


def test_classifier_refines_the_class_from_the_output() -> None:
    rules = Classifier.of((r"not supported", ErrorClass.UNSUPPORTED))
    with pytest.raises(BackendError) as exc:
        run_tool(
            ["/bin/sh", "-c", "echo 'Op FOO is not supported'; exit 1"],
            timeout_s=10,
            error_class=ErrorClass.CONVERT,
            classify=rules,
        )
    assert exc.value.error_class == ErrorClass.UNSUPPORTED
    assert rules.classify("all fine", ErrorClass.CONVERT) == ErrorClass.CONVERT


def test_a_crash_names_the_signal() -> None:
    with pytest.raises(BackendError) as exc:
        run_tool(["/bin/sh", "-c", "kill -SEGV $$"], timeout_s=10, error_class=ErrorClass.RUNTIME)
    assert "killed by signal SIGSEGV" in exc.value.message


def test_timeout_kills_the_tool_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; echo started; wait"
    t0 = time.monotonic()
    with pytest.raises(BackendError) as exc:
        run_tool(["/bin/sh", "-c", script], timeout_s=1.0, error_class=ErrorClass.RUNTIME, what="waiting")
    assert time.monotonic() - t0 < 10
    assert exc.value.error_class == ErrorClass.TIMEOUT
    assert "did not finish within 1 s" in exc.value.message and "started" in exc.value.message
    child = int(pid_file.read_text())
    for _ in range(50):  # the grandchild got SIGKILL with the group; give the kernel a moment to reap it
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as f:
            if f.read().split()[2] == "Z":
                break
        time.sleep(0.05)
    else:
        raise AssertionError("the tool's child survived the timeout")


def test_missing_tools_are_runtime_failures_that_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as exc:
        run_tool([str(tmp_path / "nope")], timeout_s=5, error_class=ErrorClass.CONVERT)
    assert exc.value.error_class == ErrorClass.RUNTIME and "not found" in exc.value.message
    with pytest.raises(BackendError, match="frobnicate not found on PATH; install it"):
        require_tool("frobnicate", hint="install it")
    assert find_tool("sh") is not None and find_tool("sh", str(tmp_path / "sh")) is None


# -- options --------------------------------------------------------------------------------------------
def test_options_are_typed_and_unknown_keys_named() -> None:
    opts = Options("x", {"a": "s", "n": 3, "t": 1.5, "f": True}, ("a", "n", "t", "f", "unset"))
    assert (opts.text("a"), opts.integer("n", 0), opts.seconds("t", 9), opts.flag("f", False)) == ("s", 3, 1.5, True)
    assert opts.text("unset", "default") == "default"
    with pytest.raises(ValueError, match=r"unknown option.*bogus; it takes"):
        Options("x", {"bogus": 1}, ("a",))
    with pytest.raises(ValueError, match="option n must be an integer >= 5"):
        opts.integer("n", 0, minimum=5)
    with pytest.raises(ValueError, match="option a must be one of b, c"):
        opts.text("a", choices=("b", "c"))
    with pytest.raises(ValueError, match="option f must be a number of seconds"):
        opts.seconds("f", 1)


# -- local shell and ssh ---------------------------------------------------------------------------------
def test_local_shell_moves_files_and_cleans_up(tmp_path: Path) -> None:
    shell = Shell()
    work = shell.make_temp_dir(str(tmp_path / "remote"), "job-", timeout_s=10)
    assert Path(work).is_dir() and Path(work).name.startswith("job-")
    (tmp_path / "a.txt").write_text("hello")
    shell.push(tmp_path / "a.txt", f"{work}/a.txt", timeout_s=10)
    shell.pull(f"{work}/a.txt", tmp_path / "b.txt", timeout_s=10)
    assert (tmp_path / "b.txt").read_text() == "hello"
    shell.remove_tree(work, timeout_s=10)
    assert not Path(work).exists()
    with pytest.raises(ValueError, match="refusing to remove"):
        shell.remove_tree("/tmp", timeout_s=10)


def test_ssh_shell_runs_copies_and_reports_unreachable_boards(
    tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("fake key")
    board = SshShell(host="jetson.lab", user="nvidia", port=2222, key=str(key))
    monkeypatch.setenv("EAGLE_FAKE_SSH_HOSTS", "jetson.lab")
    assert board.run("echo $((6*7))", timeout_s=10, error_class=ErrorClass.RUNTIME).stdout.strip() == "42"
    (ssh_call,) = tools.calls("ssh")
    assert ssh_call["argv"][:4] == ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    assert ssh_call["argv"][4:6] == ["-p", "2222"] and "nvidia@jetson.lab" in ssh_call["argv"]
    work = board.make_temp_dir(str(tmp_path / "board"), "eagle-", timeout_s=10)
    (tmp_path / "m.onnx").write_bytes(b"model")
    board.push(tmp_path / "m.onnx", f"{work}/m.onnx", timeout_s=10)
    assert (Path(work) / "m.onnx").read_bytes() == b"model"
    assert tools.calls("scp")[0]["argv"][5:7] == ["-P", "2222"]  # after -q and the two -o options
    with pytest.raises(BackendError) as exc:
        board.run("exit 4", timeout_s=10, error_class=ErrorClass.COMPILE, what="building")
    assert exc.value.error_class == ErrorClass.COMPILE and "exit code 4" in exc.value.message

    monkeypatch.setenv("EAGLE_FAKE_SSH_HOSTS", "other.lab")
    with pytest.raises(BackendError) as exc:
        board.run("true", timeout_s=10, error_class=ErrorClass.COMPILE)
    assert exc.value.error_class == ErrorClass.RUNTIME
    assert "ssh to nvidia@jetson.lab failed: ssh: Could not resolve hostname jetson.lab" in exc.value.message


# -- adb ------------------------------------------------------------------------------------------------
def test_parse_adb_devices_fixture() -> None:
    text = (FIXTURES / "adb_devices.txt").read_text()
    assert parse_adb_devices(text) == {
        "R58M12ABCDE": "device",
        "emulator-5554": "offline",
        "0123456789ABCDEF": "unauthorized",
    }
    assert (
        parse_adb_devices(
            "* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
            "List of devices attached\n\n"
        )
        == {}
    )


@pytest.mark.parametrize(
    ("devices", "serial", "problem"),
    [
        ("PHONE1:device", "PHONE1", ""),
        ("PHONE1:device", "", ""),
        ("", "", "adb sees 0 device(s): none"),
        ("A:device,B:device", "", "set the option serial: adb sees 2 device(s)"),
        ("A:device", "B", "device B is not on adb (adb devices lists: A (device))"),
        ("A:unauthorized", "A", "accept the USB debugging prompt"),
        ("A:offline", "A", "device A is offline"),
    ],
)
def test_adb_device_problem(
    tools: FakeTools, monkeypatch: pytest.MonkeyPatch, devices: str, serial: str, problem: str
) -> None:
    monkeypatch.setenv("EAGLE_FAKE_ADB_DEVICES", devices)
    found = Adb(str(tools.bin / "adb"), serial).device_problem()
    assert (problem in found) if problem else found == ""


def test_adb_shell_passes_the_exit_status_back_and_push_pull(
    tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EAGLE_FAKE_ADB_DEVICES", "PHONE1:device")
    adb = Adb(str(tools.bin / "adb"), "PHONE1")
    out = adb.shell("echo hi; exit 0", timeout_s=10, error_class=ErrorClass.RUNTIME)
    assert (out.returncode, out.stdout.strip()) == (0, "hi")
    assert adb.shell("exit 7", timeout_s=10, error_class=ErrorClass.RUNTIME, check=False).returncode == 7
    with pytest.raises(BackendError) as exc:
        adb.shell(
            "echo 'Layer X not supported' >&2; exit 2",
            timeout_s=10,
            error_class=ErrorClass.RUNTIME,
            what="snpe-net-run",
            classify=Classifier.of((r"not supported", ErrorClass.UNSUPPORTED)),
        )
    assert exc.value.error_class == ErrorClass.UNSUPPORTED and "exit code 2" in exc.value.message
    (tmp_path / "f").write_text("x")
    adb.push(tmp_path / "f", str(tmp_path / "phone" / "f"))
    adb.pull(str(tmp_path / "phone" / "f"), tmp_path / "g")
    assert (tmp_path / "g").read_text() == "x"
    with pytest.raises(BackendError, match="failed to stat remote object"):
        adb.pull(str(tmp_path / "phone" / "missing"), tmp_path / "h")
    monkeypatch.setenv("EAGLE_FAKE_ADB_DEVICES", "PHONE1:unauthorized")
    with pytest.raises(BackendError) as exc:
        adb.shell("true", timeout_s=10, error_class=ErrorClass.CONVERT)
    assert exc.value.error_class == ErrorClass.RUNTIME and "device unauthorized" in exc.value.message


# -- nvidia-smi -----------------------------------------------------------------------------------------
def test_nvidia_gpus(tools: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAGLE_FAKE_GPUS", "NVIDIA GeForce GTX 1080 Ti;535.54.03;11264|NVIDIA H200;550.90.07;143771")
    gpus = nvidia_gpus()
    assert [(g.index, g.name, g.driver, g.memory_mib) for g in gpus] == [
        (0, "NVIDIA GeForce GTX 1080 Ti", "535.54.03", "11264"),
        (1, "NVIDIA H200", "550.90.07", "143771"),
    ]
    monkeypatch.setenv("EAGLE_FAKE_GPUS", "")
    with pytest.raises(BackendError, match="exit code 6"):
        nvidia_gpus()


# -- limits enforced on the device ------------------------------------------------------------------------
def test_device_timeout_kills_the_command_on_the_device(
    tools: FakeTools, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EAGLE_FAKE_SSH_HOSTS", "nano.lab")
    marker = tmp_path / "finished"
    for shell in (Shell(), SshShell(host="nano.lab")):
        t0 = time.monotonic()
        with pytest.raises(BackendError) as exc:
            shell.run(
                f"echo started; sleep 30; touch {marker}",
                timeout_s=20,
                device_timeout_s=1,
                error_class=ErrorClass.RUNTIME,
                what="trtexec",
            )
        assert time.monotonic() - t0 < 10  # the device's timeout fired, not the 20 s backstop
        assert exc.value.error_class == ErrorClass.TIMEOUT
        message = exc.value.message
        assert message.startswith(f"trtexec ran past 1 s on {shell.description} and was killed there; last output: ")
        assert "started" in message
    assert not marker.exists()


def test_an_early_kill_on_the_device_is_not_a_timeout() -> None:
    with pytest.raises(BackendError) as exc:
        Shell().run("kill -9 $$", timeout_s=20, device_timeout_s=10, error_class=ErrorClass.RUNTIME, what="trtexec")
    assert exc.value.error_class == ErrorClass.RUNTIME and "killed by signal SIGKILL" in exc.value.message


def test_adb_device_timeout(tools: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAGLE_FAKE_ADB_DEVICES", "PHONE1:device")
    with pytest.raises(BackendError) as exc:
        Adb(str(tools.bin / "adb"), "PHONE1").shell(
            "sleep 30", timeout_s=20, device_timeout_s=1, error_class=ErrorClass.RUNTIME, what="snpe-net-run"
        )
    assert exc.value.error_class == ErrorClass.TIMEOUT and "ran past 1 s on the device PHONE1" in exc.value.message
