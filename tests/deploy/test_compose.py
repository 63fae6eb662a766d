"""The compose file and systemd units only name commands that this package really provides."""

from __future__ import annotations

import configparser
import shlex
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from latbench.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _console_scripts() -> dict[str, str]:
    return {
        ep.name: ep.value
        for ep in entry_points(group="console_scripts")
        if ep.value.split(".")[0] in {"latbench", "eagle_agent", "eagle_server", "predictors", "search"}
    }


def _check_command(argv: list[str]) -> None:
    scripts = _console_scripts()
    program = Path(argv[0]).name
    assert program in scripts, f"{argv[0]!r} is not a console script of this package ({sorted(scripts)})"
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == program]
    assert callable(script.load())
    if program == "eagle":
        # the subcommand must be registered and loadable (an unavailable one has no handler)
        parser = build_parser()
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([*argv[1:2], "--help"])
        assert exc.value.code == 0
        sub_actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        choice = sub_actions[0].choices[argv[1]]
        assert not (choice.description or "").startswith("unavailable"), f"eagle {argv[1]}: {choice.description}"
        assert any(action.dest != "help" for action in choice._actions), f"eagle {argv[1]} has no options"


def test_compose_services_run_package_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "server", "trainer", "agent-cpu"} <= set(services)
    for name, service in services.items():
        if "build" not in service:
            continue  # third-party image
        dockerfile = ROOT / service["build"]["dockerfile"]
        assert dockerfile.exists(), f"{name}: {dockerfile} missing"
        command = service["command"]
        argv = command if isinstance(command, list) else shlex.split(command)
        _check_command(argv)
    assert services["server"]["environment"]["EAGLE_DB_URL"].startswith("postgresql+psycopg://")


@pytest.mark.parametrize("unit", sorted((ROOT / "deploy" / "systemd").glob("*.service")), ids=lambda p: p.name)
def test_systemd_units_run_package_commands(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit.read_text())
    argv = shlex.split(parser["Service"]["ExecStart"])
    _check_command(argv)
