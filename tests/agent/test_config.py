"""Agent settings: file, environment and command line, with errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from eagle_agent.config import ConfigError, build_config, read_config_file


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_file_env_and_cli_in_that_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'server = "file:1"\ntoken = "t-file"\ndevice = "desktop_cpu_x_fp32"\nruntime = "litert"\n'
        'precision = ["fp32", "int8"]\njob_timeout_s = 60\n[backend_options]\nnum_threads = 2\n',
    )
    env = {"EAGLE_AGENT_TOKEN": "t-env", "EAGLE_AGENT_SERVER": "env:2"}
    cfg = build_config({"config": str(path), "server": "cli:3", "device": None}, env=env)
    assert cfg.server == "cli:3" and cfg.token == "t-env" and cfg.device == "desktop_cpu_x_fp32"
    assert cfg.runtime == "litert" and cfg.precisions == ("fp32", "int8") and cfg.backend_name == "cpu_litert"
    assert cfg.job_timeout_s == 60 and cfg.backend_options == {"num_threads": 2}


def test_defaults(tmp_path: Path) -> None:
    cfg = build_config({"server": "127.0.0.1:50051", "token": "t", "workdir": str(tmp_path)}, env={})
    assert cfg.runtime == "tf" and cfg.backend_name == "cpu_tf" and cfg.precisions == ("fp32",)
    assert cfg.device.startswith("desktop_cpu_") and cfg.device.endswith("_fp32")
    assert cfg.workdir == tmp_path and cfg.once is None


def test_precision_list_on_the_command_line() -> None:
    cfg = build_config({"server": "h:1", "token": "t", "precision": "int8, fp16", "runtime": "litert"}, env={})
    assert cfg.precisions == ("int8", "fp16") and cfg.device.endswith("_int8")


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"token": "t"}, "the server is needed"),
        ({"server": "nohost", "token": "t"}, "HOST:PORT"),
        ({"server": "h:70000", "token": "t"}, "port must be"),
        ({"server": "h:1"}, "a token is needed"),
        ({"server": "h:1", "token": "t", "device": "My Laptop"}, "device name"),
        ({"server": "h:1", "token": "t", "runtime": "onnx"}, "no backend for runtime 'onnx'"),
        ({"server": "h:1", "token": "t", "once": 0}, "once must be a positive"),
        ({"server": "h:1", "token": "t", "job_timeout_s": -1.0}, "job_timeout_s must be"),
    ],
)
def test_bad_settings_name_the_problem(cli: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(cli, env={})


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(_write(tmp_path, "server = \n"))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) sever"):
        read_config_file(_write(tmp_path, 'sever = "h:1"\n'))
    with pytest.raises(ConfigError, match="job_timeout_s must be int or float"):
        read_config_file(_write(tmp_path, 'job_timeout_s = "ten"\n'))
    with pytest.raises(ConfigError, match="once must be int"):
        read_config_file(_write(tmp_path, "once = true\n"))
