"""benchmarks/ranking_topk.py: the ranking metrics on known orders, and real units of the fast methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks._load import load_script

bench = load_script("ranking_topk")


def test_ranking_stats_on_perfect_reversed_and_shifted_orders() -> None:
    true = np.arange(500, dtype=np.float64)  # candidate i has accuracy i: the best is 499
    perfect = bench.ranking_stats(true.copy(), true)
    assert perfect["top1_rank"] == 1 and perfect["top10_ranks"] == list(range(1, 11))
    assert perfect["top10_gap"] == 0.0 and perfect["recall100"] == 100.0 and perfect["kendall"] == pytest.approx(1)
    worst = bench.ranking_stats(-true, true)
    assert worst["top1_rank"] == 500 and worst["top10_best_rank"] == 491 and worst["recall100"] == 0.0
    assert worst["top10_gap"] == 499 - 9
    # The predicted order misses the best 5: its top 10 are true ranks 6..15, half of the top 100 shifted out.
    shifted = np.where(true >= 495, -1.0, true)
    stats = bench.ranking_stats(shifted, true)
    assert stats["top1_rank"] == 6 and stats["top10_median_rank"] == 10.5 and stats["top10_gap"] == 5.0
    assert stats["recall100"] == 95.0


def test_draw_is_table2s_and_refuses_too_large_n() -> None:
    table2 = load_script("table2_accuracy")
    valid = np.flatnonzero(np.isfinite(bench.accuracy_target()))
    tr, cand = bench.draw(valid, 100, seed=3)
    tr2, te2 = table2.draw(valid, 100, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(cand, te2)
    with pytest.raises(ValueError, match="fewer than 100 candidates"):
        bench.draw(valid, valid.size - 50, seed=0)


@pytest.mark.slow
def test_fast_units_rank_far_better_than_chance(tmp_path: Path) -> None:
    code = bench.main(["--methods", "structural,relation_linear", "--seeds", "0", "--results", str(tmp_path)])
    assert code == 0
    for method in ("structural", "relation_linear"):
        unit = json.loads((tmp_path / "ranking_topk" / f"{method}_100_0.json").read_text())
        assert unit["candidates"] == 15184
        # Chance puts the predicted best at rank ~7,600 and the top 100 holds ~1 of the true top 100.
        assert unit["top1_rank"] < 1000 and unit["recall100"] > 5 and unit["kendall"] > 0.5, unit
    md = (tmp_path / "ranking_topk.md").read_text()
    assert "| structural | 100 | 1 |" in md and "| relation_linear | 100 | 1 |" in md
