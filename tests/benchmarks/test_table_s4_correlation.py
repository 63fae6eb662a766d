"""benchmarks/table_s4_correlation.py: the correlation matrix, and the full path through a fresh store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks._load import load_script

bench = load_script("table_s4_correlation")


def test_correlation_matrix_uses_common_cells() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 6.0])
    columns = {"a": x, "b": np.exp(x), "c": -x, "d": np.array([np.nan, 5.0, 1.0, 2.0, 3.0, 4.0])}
    names, rho, common = bench.correlation_matrix(columns)
    assert names == ["a", "b", "c", "d"]
    np.testing.assert_allclose(np.diag(rho), 1.0)
    np.testing.assert_allclose(rho, rho.T)
    assert rho[0, 1] == pytest.approx(1.0) and rho[0, 2] == pytest.approx(-1.0)
    assert common[0, 3] == 4 and common[0, 0] == 5
    assert rho[0, 3] == pytest.approx(-0.2)  # ranks (1,2,3,4) vs (4,1,2,3): 1 - 6 * 12 / 60


@pytest.mark.slow
def test_full_run_reads_back_the_release_from_the_store(tmp_path: Path) -> None:
    summary = bench.run(tmp_path)
    assert len(summary["devices"]) == 13
    assert summary["import"]["inserted"] == sum(summary["import"]["inserted_per_device"].values()) > 100_000
    rho = np.array(summary["spearman"])
    assert rho.shape == (13, 13)
    np.testing.assert_allclose(np.diag(rho), 1.0)
    off = rho[~np.eye(13, dtype=bool)]
    assert np.all((off > 0.3) & (off < 1.0))  # latencies on different hardware correlate, never perfectly
    common = np.array(summary["common_cells"])
    assert common.max() <= 15284 and common.min() > 10_000
    assert json.loads((tmp_path / "table_s4_correlation.json").read_text())["devices"] == summary["devices"]
    assert (tmp_path / "table_s4_correlation.png").stat().st_size > 10_000
    assert "| d13 |" in (tmp_path / "table_s4_correlation.md").read_text()
