"""``eagle agents list`` shows each agent's backend check as the agent reported it."""

from __future__ import annotations

from eagle_server.cli.agents import _agents_table


def _agent(check: dict[str, object]) -> dict[str, object]:
    return {
        "id": "a1",
        "state": "online",
        "device": "embedded_tpu_edgetpu_int8",
        "hostname": "lab-3",
        "capabilities": ["edgetpu:int8"],
        "last_heartbeat": "2026-11-28T10:00:00+00:00",
        "leased_jobs": 0,
        "backend_check": check,
    }


def test_failed_check_names_what_is_missing_and_the_fix() -> None:
    text = _agents_table(
        {
            "agents": [
                _agent(
                    {
                        "ok": False,
                        "found": {},
                        "missing": {"edgetpu_compiler": "not on PATH: install the Edge TPU compiler"},
                    }
                )
            ]
        }
    )
    assert "backend check FAILED: edgetpu_compiler: not on PATH: install the Edge TPU compiler" in text


def test_passing_and_absent_checks() -> None:
    assert "backend check ok" in _agents_table({"agents": [_agent({"ok": True, "found": {"x": "1"}, "missing": {}})]})
    assert "backend check" not in _agents_table({"agents": [_agent({})]})
    assert "no agents have registered" in _agents_table({"agents": []})
