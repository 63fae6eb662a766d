"""benchmarks/search_fig6.py: compact curves, the comparison helper, and a tiny resumable end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_fig6.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_fig6", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_fig6"] = module
    spec.loader.exec_module(module)
    return module


def test_curves_round_trip_through_change_points(bench: ModuleType) -> None:
    curve = np.array([np.nan, np.nan, 70.0, 70.0, 71.5, 71.5, 71.5, 73.0])
    points = bench.steps_of(curve)
    assert points == [[3, 70.0], [5, 71.5], [8, 73.0]]
    np.testing.assert_array_equal(bench.curve_of(points, 8), curve)
    assert bench.models_to_reach(curve, 71.5) == 5
    assert bench.models_to_reach(curve, 74.0) is None


@pytest.mark.slow
def test_tiny_run_is_resumable(bench: ModuleType, tmp_path: Path) -> None:
    args = [
        "--runs",
        "1",
        "--total",
        "100",
        "--steps",
        "10",
        "--hidden",
        "8",
        "--gcn-epochs",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert bench.main(args) == 0
    units = tmp_path / "units"
    for setting, arms in bench.ARMS.items():
        for arm in arms:
            rows = bench.read_units(units / f"{setting}_{arm}.jsonl")
            if arm in bench.EXTRA_ARMS:  # only with --parts tuned / refit
                assert rows == []
                continue
            assert len(rows) == 1 and rows[0]["trained"] == 100 and rows[0]["total"] == 100
            assert rows[0]["seed"] == bench.run_seed(setting, arm, 0)
            assert rows[0]["cpu_seconds"] >= 0 and rows[0]["load"] >= 0  # a short AE run can round to 0.0 s
    summary = json.loads((tmp_path / "search_fig6.json").read_text())
    assert summary["settings"]["free"]["arms"]["brp"]["runs"] == 1
    assert summary["settings"]["gpu5ms"]["optimum"] == pytest.approx(72.24)
    assert set(summary["s3"]) >= {"gcn", "layerwise", "flops", "limits_ms"}
    for name in ("search_fig6.md", "fig6_left.png", "fig6_right.png", "figS3.png"):
        assert (tmp_path / name).stat().st_size > 0
    before = (units / "free_brp.jsonl").read_text()
    assert bench.main([*args, "--parts", "free"]) == 0  # resumed: nothing left to run
    assert (units / "free_brp.jsonl").read_text() == before
    assert set(json.loads((units / "timing.json").read_text())) == {"predictors", "free", "gpu5ms"}
    assert bench.main([*args, "--parts", "tuned", "--arms", "brp_tuned"]) == 0  # one tuned arm only
    rows = bench.read_units(units / "free_brp_tuned.jsonl")
    assert len(rows) == 1 and rows[0]["info"]["K"] == 40 and rows[0]["seed"] == 1000
    assert rows[0]["info"]["relation"]["target"] == "soft"
    assert bench.read_units(units / "gpu5ms_brp_gcn_tuned.jsonl") == []
    free = json.loads((tmp_path / "search_fig6.json").read_text())["settings"]["free"]
    assert free["arms"]["brp"]["options"]["target"] == "hard" and free["arms"]["brp"]["options"]["budget"] == 100
    assert set(free["target_at_100"]) == {"brp", "brp_linear", "brp_tuned"}
    assert free["arms"]["brp_linear"]["options"]["relation"] == "linear"  # in the default run
    assert "length_scale" not in free["arms"]["brp_linear"]["options"]  # the kernel's option is not shown
    assert bench.main([*args, "--parts", "refit"]) == 0  # the refitting arm: free setting only
    rows = bench.read_units(units / "free_brp_refit.jsonl")
    assert len(rows) == 1 and rows[0]["seed"] == bench.run_seed("free", "brp_refit", 0) == 5000
    assert rows[0]["info"]["refit_every"] == bench.REFIT_BRP["refit_every"] > 0 and rows[0]["info"]["refits"] > 0
    free = json.loads((tmp_path / "search_fig6.json").read_text())["settings"]["free"]
    assert "brp_refit_vs_ae" in free["comparisons"] and "brp_refit" in free["target_at_100"]
    assert free["arms"]["brp"]["options"]["refit_every"] == 0  # the paper's arm never refits
