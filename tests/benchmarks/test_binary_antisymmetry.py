"""benchmarks/binary_antisymmetry.py: relation statistics, and tiny units of both relation models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks._load import load_script

bench = load_script("binary_antisymmetry")


def test_relation_stats_on_known_matrices() -> None:
    acc = np.array([50.0, 60.0, 70.0, 65.0])
    perfect = 1.0 / (1.0 + np.exp(-(acc[:, None] - acc[None, :])))
    stats = bench.relation_stats(perfect, acc)
    assert stats["pairs"] == 6
    assert stats["antisymmetry"] == 100.0 and stats["pair_accuracy"] == 100.0
    assert stats["pair_accuracy_both"] == 100.0
    assert stats["mean_abs_sum_gap"] == pytest.approx(0.0)
    always = np.full((4, 4), 0.7)  # "the first always wins": never antisymmetric
    stats = bench.relation_stats(always, acc)
    assert stats["antisymmetry"] == 0.0
    assert stats["pair_accuracy"] == pytest.approx(100 / 6)  # right for i < j iff acc_i > acc_j: only (2, 3)
    assert stats["pair_accuracy_both"] == 0.0
    assert stats["mean_abs_sum_gap"] == pytest.approx(0.4)
    reversed_ = perfect.T
    assert bench.relation_stats(reversed_, acc)["pair_accuracy"] == 0.0


def test_draw_disjoint() -> None:
    tr, ev = bench.draw(np.arange(3000), 900, 1000, seed=2)
    assert tr.size == 900 and ev.size == 1000 and not set(tr) & set(ev)
    with pytest.raises(ValueError):
        bench.draw(np.arange(100), 90, 20, seed=0)


@pytest.mark.slow
def test_tiny_units_and_summary(tmp_path: Path) -> None:
    cfg = {"gcn": {"layers": 2, "hidden": 8}, "epochs": 2, "pairs": 200, "search": {"hidden": 8, "steps": 20}}
    summary = bench.run(tmp_path, ["paper", "search"], [20], [0, 1], n_eval=60, cfg=cfg)
    units = sorted((tmp_path / bench.NAME).glob("*.json"))
    assert len(units) == 4
    unit = json.loads((tmp_path / bench.NAME / "search_20_1.json").read_text())
    assert unit["pairs"] == 60 * 59 // 2 and unit["n_eval"] == 60
    for u in map(lambda p: json.loads(p.read_text()), units):
        assert 0 <= u["antisymmetry"] <= 100 and 0 <= u["pair_accuracy_both"] <= u["pair_accuracy"] <= 100
        assert -1 <= u["kendall"] <= 1
    assert {(r["model"], r["n_train"]) for r in summary["rows"]} == {("paper", 20), ("search", 20)}
    assert all(r["seeds"] == [0, 1] for r in summary["rows"])
    assert "| search | 20 |" in (tmp_path / "binary_antisymmetry.md").read_text()
