"""The lab guides in deploy/guides: one per device class, and every agent config they show is one the
agent accepts (settings and backend options)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eagle_agent.backends import create_backend
from eagle_agent.config import build_config

GUIDES = Path(__file__).resolve().parents[3] / "deploy" / "guides"
EXPECTED = {
    "desktop-gpu.md": "torch_gpu",
    "jetson-host.md": "jetson_trt",
    "edgetpu-usb-host.md": "edgetpu",
    "android-snpe.md": "snpe",
}


def toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, re.DOTALL)


@pytest.mark.parametrize("guide", sorted(EXPECTED))
def test_guide_config_is_accepted(guide: str, tmp_path: Path) -> None:
    (block,) = toml_blocks((GUIDES / guide).read_text())
    path = tmp_path / "agent.toml"
    path.write_text(block)
    config = build_config({"config": str(path), "token": "eat_test"}, env={})
    assert config.backend_name == EXPECTED[guide]
    backend = create_backend(config.backend_name, config.backend_options, config.precisions)
    assert backend.capabilities()


def test_a_typo_in_the_backend_options_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eagle_agent.main import main

    path = tmp_path / "agent.toml"
    path.write_text(
        'server = "h:1"\ntoken = "t"\ndevice = "embedded_tpu_edgetpu_int8"\nruntime = "edgetpu"\n'
        'precision = "int8"\n[backend_options]\ndelegat = "libedgetpu.so.1"\n'
    )
    assert main(["--config", str(path), "--check"]) == 2
    assert (
        "backend edgetpu: unknown option(s) delegat; it takes compile_timeout_s, compiler, delegate,"
        in capsys.readouterr().err
    )
