"""benchmarks/table2_accuracy.py on a tiny configuration: sources, units, resume and summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from predictors.gcn import GCNConfig
from tests.benchmarks._load import load_script

bench = load_script("table2_accuracy")


def test_draw_is_seeded_nested_and_disjoint() -> None:
    pool = np.arange(1000)
    tr, te = bench.draw(pool, 50, seed=3)
    tr2, _ = bench.draw(pool, 100, seed=3)
    assert tr.size == 50 and te.size == 950
    assert not set(tr) & set(te)
    np.testing.assert_array_equal(tr2[:50], tr)  # a seed's draws are nested across n
    assert not np.array_equal(bench.draw(pool, 50, seed=4)[0], tr)
    with pytest.raises(ValueError):
        bench.draw(pool, 1000, seed=0)


def test_target_is_cifar100_seed888_on_valid_cells() -> None:
    acc = bench.accuracy_target()
    assert acc.shape == (15625,)
    assert np.isfinite(acc).sum() == 15284  # the valid cells
    assert np.nanmin(acc) > 0 and np.nanmax(acc) < 100


@pytest.mark.slow
def test_tiny_run_writes_units_and_summary(tmp_path: Path) -> None:
    paths = bench.Paths(tmp_path)
    gcn = GCNConfig(layers=2, hidden=8)
    kwargs = dict(gcn=gcn, epochs=2, source_sizes=(30, 10))
    summary = bench.run(paths, ["paper", "improved"], [20], list(bench.INITS), [0], **kwargs)
    units = sorted(paths.units.glob("*.json"))
    assert len(units) == 6  # 2 variants x 3 inits
    unit = json.loads(paths.unit("improved", "latency", 20, 0).read_text())
    assert unit["n_fit"] + unit["n_val"] == 20 and unit["n_val"] == 5
    assert unit["n_test"] == 15284 - 20
    for key in ("within_1pct", "within_5pct", "within_10pct"):
        assert 0.0 <= unit[key] <= 100.0
    assert unit["within_1pct"] <= unit["within_5pct"] <= unit["within_10pct"]
    assert -1.0 <= unit["spearman"] <= 1.0
    sources = json.loads((paths.sources / "sources.json").read_text())
    assert set(sources) == {"latency", "flops"} and sources["latency"]["n_train"] == 30
    cell = summary["variants"]["paper"]["sizes"]["20"]["flops"]
    assert cell["seeds"] == [0] and cell["within_5pct"]["n"] == 1
    assert "| 20 | latency |" in (tmp_path / "table2.md").read_text()
    # Resumable: a second run trains nothing new (the unit files are left as they are).
    stamp = {p: p.stat().st_mtime_ns for p in units}
    bench.run(paths, ["paper"], [20], ["standard"], [0], **kwargs)
    assert {p: p.stat().st_mtime_ns for p in units} == stamp


def test_structural_variant_units_and_summary(tmp_path: Path) -> None:
    paths = bench.Paths(tmp_path)
    # Default inits are ignored for the structural variant (no GCN, no sources trained).
    summary = bench.run(paths, ["structural"], [30], list(bench.INITS), [0, 1], GCNConfig(layers=1, hidden=4))
    assert sorted(p.name for p in paths.units.glob("*.json")) == [
        "structural_none_30_0.json",
        "structural_none_30_1.json",
    ]
    assert not paths.sources.exists()
    unit = json.loads(paths.unit("structural", "none", 30, 0).read_text())
    assert unit["n_test"] == 15284 - 30 and unit["members"] == 4
    assert unit["within_1pct"] <= unit["within_5pct"] <= unit["within_10pct"]
    assert unit["spearman"] > 0.5  # 30 models already rank the rest far better than chance
    cell = summary["variants"]["structural"]["sizes"]["30"]["none"]
    assert cell["seeds"] == [0, 1] and cell["within_5pct"]["n"] == 2
    assert "(not in the paper)" in (tmp_path / "table2.md").read_text()


def test_summary_keeps_the_source_record_when_the_source_models_are_gone(tmp_path: Path) -> None:
    paths = bench.Paths(tmp_path)
    bench.run(paths, ["structural"], [30], ["standard"], [0], GCNConfig(layers=1, hidden=4))
    record = {"latency": {"target": "latency (ms)", "n_train": 900, "epochs": 128}}
    previous = json.loads((tmp_path / "table2.json").read_text())
    (tmp_path / "table2.json").write_text(json.dumps({**previous, "sources": record}))
    # sources/ (not committed) is absent, as in a fresh clone: the committed record survives a re-summary
    assert bench.summarise(paths)["sources"] == record
    paths.sources.mkdir(parents=True)
    (paths.sources / "sources.json").write_text(json.dumps({"latency": {"n_train": 30}}))
    assert bench.summarise(paths)["sources"] == {"latency": {"n_train": 30}}  # fresh sources win


def test_distilled_variant_units_and_summary(tmp_path: Path) -> None:
    paths = bench.Paths(tmp_path)
    # The GCN inits are ignored: the distilled GCN starts from its teacher's pseudo-labels, no source trained.
    summary = bench.run(paths, ["distilled"], [30], list(bench.INITS), [0], GCNConfig(layers=1, hidden=8), epochs=1)
    assert [p.name for p in paths.units.glob("*.json")] == ["distilled_distilled_30_0.json"]
    assert not paths.sources.exists()
    unit = json.loads(paths.unit("distilled", "distilled", 30, 0).read_text())
    assert unit["pool_graphs"] == 5256  # every distinct valid NB201 graph
    assert unit["epochs"] == [1, 1] and unit["distill_config"]["pretrain_epochs"] == 1
    assert unit["n_test"] == 15284 - 30
    for scored in (unit, unit["with_teacher"]):
        assert scored["within_1pct"] <= scored["within_5pct"] <= scored["within_10pct"]
    cell = summary["variants"]["distilled"]["sizes"]["30"]["distilled"]
    assert cell["seeds"] == [0]
    assert cell["with_teacher"]["within_5pct"]["mean"] == unit["with_teacher"]["within_5pct"]
    md = (tmp_path / "table2.md").read_text()
    assert "pseudo-labels" in md and "averaged with equal weights" in md
