"""benchmarks/train_time.py on a tiny GCN: timings and scores of both recipes, and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from predictors.gcn import GCNConfig
from tests.benchmarks._load import load_script

bench = load_script("train_time")


@pytest.mark.slow
def test_tiny_units_and_summary(tmp_path: Path) -> None:
    device = bench.DEVICES[0]
    kwargs = dict(n_train=36, gcn=GCNConfig(layers=2, hidden=8), epochs=3)
    summary = bench.run(tmp_path, [device], list(bench.RECIPES), [0], **kwargs)
    for recipe in bench.RECIPES:
        unit = json.loads((tmp_path / bench.NAME / f"{device}_{recipe}_0.json").read_text())
        assert unit["n_train"] == 36 and unit["n_val"] == 4
        assert 1 <= unit["epochs"] <= 3
        assert 0 < unit["first_epoch_seconds"] <= unit["seconds"]
        assert unit["seconds_per_epoch"] > 0 and unit["cpu_seconds"] > 0
        assert 0 <= unit["within_5pct"] <= unit["within_10pct"] <= 100
    rec = json.loads((tmp_path / bench.NAME / f"{device}_recommended_0.json").read_text())
    assert rec["prior"] == "layerwise" and rec["train_config"]["loss"] == "huber"
    assert [r["recipe"] for r in summary["rows"]] == ["paper", "recommended"]
    assert set(summary["median_seconds"]) == set(bench.RECIPES)
    assert "| recommended |" in (tmp_path / "train_time.md").read_text()


def test_unknown_recipe() -> None:
    with pytest.raises(ValueError):
        bench.make("fast", 0, None, None)
