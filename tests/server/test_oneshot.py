"""``eagle serve --measure``: the README's one-command job, end to end with real processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eagle_server.oneshot import parse_measure_spec
from latbench import graph, nb201


def test_random_spec_draws_distinct_valid_cells_reproducibly() -> None:
    first = parse_measure_spec("random:7", seed=3)
    assert first == parse_measure_spec("random:7", seed=3)
    assert len(set(first)) == 7
    assert all(graph.nb201_cell(nb201.Arch.from_index(i)).valid for i in first)
    assert first != parse_measure_spec("random:7", seed=4)


def test_index_list_and_refusals() -> None:
    assert parse_measure_spec("0, 17,42") == (0, 17, 42)
    invalid = next(a.index for a in nb201.all_archs() if not graph.nb201_cell(a).valid)
    with pytest.raises(ValueError, match=f"index {invalid} has no input->output path"):
        parse_measure_spec(f"1,{invalid}")
    with pytest.raises(ValueError, match="positive N"):
        parse_measure_spec("random:0")
    with pytest.raises(nb201.ArchError):
        parse_measure_spec("99999")


@pytest.mark.slow
def test_serve_measure_runs_a_campaign_and_exits(tmp_path: Path) -> None:
    env = dict(os.environ, EAGLE_SETTINGS_FILE=str(tmp_path / "none.env"))
    env.pop("EAGLE_DB_URL", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "latbench.cli",
            "serve",
            "--measure",
            "0,1",
            "--runs",
            "30",
            "--no-import",
            "--port",
            "0",
            "--grpc",
            "127.0.0.1:0",
            "--export",
            "out/local.csv",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "campaign 1: 2 measured, 0 failed" in proc.stdout
    with (tmp_path / "out" / "local.csv").open() as f:
        rows = list(csv.DictReader(f))
    measured = {int(r["arch_index"]): float(r["local_ms"]) for r in rows if r["local_ms"]}
    assert set(measured) >= {0, 1}
    assert all(value > 0 for value in measured.values())
