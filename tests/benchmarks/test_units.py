"""benchmarks/_units.py: resumable units (existing files are not recomputed) and the summary files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks._load import load_script

units = load_script("_units")


def test_run_units_computes_only_missing_units_and_writes_them_whole(tmp_path: Path, capsys) -> None:
    done = tmp_path / "bench" / "a.json"
    done.parent.mkdir()
    done.write_text('{"old": true}\n')
    calls: list[str] = []

    def compute(name: str) -> dict:
        calls.append(name)
        return {"name": name}

    jobs = [(tmp_path / "bench" / f"{n}.json", lambda n=n: compute(n)) for n in ("a", "b", "c")]
    units.run_units(jobs, lambda u: f"unit {u['name']}")
    assert calls == ["b", "c"]
    assert json.loads(done.read_text()) == {"old": True}
    assert json.loads((tmp_path / "bench" / "c.json").read_text()) == {"name": "c"}
    assert not list((tmp_path / "bench").glob("*.tmp"))
    assert capsys.readouterr().out == "unit b\nunit c\n"


def test_a_failing_unit_leaves_no_file(tmp_path: Path) -> None:
    def fail() -> dict:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        units.run_units([(tmp_path / "x.json", fail)], str)
    assert not list(tmp_path.iterdir())


def test_save_summary_writes_json_and_markdown(tmp_path: Path) -> None:
    summary = {"rows": [1]}
    assert units.save_summary(tmp_path, "demo", summary, lambda s: f"# {len(s['rows'])} row\n") is summary
    assert json.loads((tmp_path / "demo.json").read_text()) == {"rows": [1]}
    assert (tmp_path / "demo.md").read_text() == "# 1 row\n"
