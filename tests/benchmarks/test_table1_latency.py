"""benchmarks/table1_latency.py: the two noise ceilings on a synthetic device."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmarks._load import load_script


def test_heldout_ceiling_predicts_each_model_from_its_twins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_script("table1_latency")
    # groups: A = three near-equal timings, B = a pair 20% apart, C = a singleton, D = unmeasured
    keys = np.array(["A", "A", "A", "B", "B", "C", "D"])
    y = np.array([10.0, 10.1, 10.2, 5.0, 6.0, 7.0, np.nan])
    monkeypatch.setattr(bench, "canonical_keys", lambda: keys)
    held = bench.heldout_ceiling(y)
    assert held["models"] == 5  # the singleton and the unmeasured model do not count
    assert held["within_5pct"] == pytest.approx(60.0)  # A's three hit, B's pair misses
    assert held["within_10pct"] == pytest.approx(60.0)
    first = bench.ceiling(y)  # the ceiling: own timing in the median, the singleton a hit
    assert first["models"] == 6 and first["within_5pct"] == pytest.approx(100 * 4 / 6)


def test_resolve_devices_orders_the_papers_six_first_and_names_unknown_devices() -> None:
    bench = load_script("table1_latency")
    from latbench.data import PAPER_DEVICES, load_latency

    every = bench.resolve_devices("all")
    assert every[: len(PAPER_DEVICES)] == list(PAPER_DEVICES)
    assert sorted(every) == sorted(d.name for d in load_latency().devices())
    assert bench.resolve_devices(f" {PAPER_DEVICES[1]} ,") == [PAPER_DEVICES[1]]
    with pytest.raises(ValueError, match="unknown devices \\['no_such_device'\\]"):
        bench.resolve_devices(f"{PAPER_DEVICES[0]},no_such_device")
    with pytest.raises(ValueError, match="unknown devices"):
        bench.resolve_devices(",")
