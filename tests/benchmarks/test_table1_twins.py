"""benchmarks/table1_latency.twins_medians (used by table1_noise.py): the model's own timing is left out."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmarks._load import load_script


def test_twins_median_leaves_the_own_timing_out_and_counts_measured_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    table1 = load_script("table1_latency")
    # groups: A = four timings (one far off), B = a pair, C = a singleton, A's fifth member unmeasured
    keys = np.array(["A", "A", "A", "A", "B", "B", "C", "A"])
    y = np.array([10.0, 10.2, 10.4, 20.0, 5.0, 6.0, 7.0, np.nan])
    monkeypatch.setattr(table1, "canonical_keys", lambda: keys)
    med, count = table1.twins_medians(y, np.array([0, 3, 4, 6]))
    assert count.tolist() == [3, 3, 1, 0]  # the unmeasured model is no twin
    assert med[0] == pytest.approx(10.4)  # median of 10.2, 10.4, 20.0: not its own 10.0
    assert med[1] == pytest.approx(10.2)  # median of the other three: the outlier's own 20.0 left out
    assert med[2] == pytest.approx(6.0)
    assert np.isnan(med[3])
