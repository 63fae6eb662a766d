"""benchmarks/figure1.py on a tiny GCN: the three predictors, scores and the PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from predictors.gcn import GCNConfig
from tests.benchmarks._load import load_script

bench = load_script("figure1")


@pytest.mark.slow
def test_tiny_figure(tmp_path: Path) -> None:
    summary = bench.run(tmp_path, n_train=45, seed=1, gcn=GCNConfig(layers=2, hidden=8), epochs=2)
    assert summary["n_train"] == 45 and summary["n_val"] == 5
    assert summary["gcn_epochs"] <= 2
    assert set(summary["scores"]) == {"flops", "layerwise", "gcn"}
    for sc in summary["scores"].values():
        assert 0 <= sc["within_1pct"] <= sc["within_5pct"] <= sc["within_10pct"] <= 100
        assert -1 <= sc["spearman"] <= 1
    # The fitted baselines are far better than chance on the desktop CPU even from 45 models.
    assert summary["scores"]["layerwise"]["spearman"] > 0.5
    assert summary["scores"]["flops"]["spearman"] > 0.5
    assert (tmp_path / "figure1.png").stat().st_size > 20_000
    assert json.loads((tmp_path / "figure1.json").read_text())["n_test"] == summary["n_test"]
    assert "| layer-wise |" in (tmp_path / "figure1.md").read_text()


def test_split_is_disjoint_and_sized() -> None:
    tr, va, te = bench.split(np.arange(2000), 900, seed=0)
    assert (tr.size, va.size, te.size) == (900, 100, 1000)
    assert len(set(tr) | set(va) | set(te)) == 2000
