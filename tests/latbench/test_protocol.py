"""The timing protocol: hand-computed cases, properties, and the runner with a fake model and clock."""

from __future__ import annotations

import gc
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latbench import protocol
from latbench.protocol import MOBILE_RUNS, ProtocolParams, interquartile_mean, summarize, time_callable

# -- hand-computed -------------------------------------------------------------------------------------
# Four full groups of 10 and a trailing partial group of 3 (dropped).
GROUP_A = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
# sorted 1..10; Q1 at position 2.25 = 3 + 0.25*(4-3) = 3.25; Q3 at 6.75 = 7 + 0.75*(8-7) = 7.75
# kept 4, 5, 6, 7 -> mean 5.5 (4 kept)
GROUP_B = [2] * 9 + [100]
# sorted 2 x9, 100; Q1 = 2; Q3 at 6.75 = 2 + 0.75*(2-2) = 2 -> the nine 2s kept, mean 2 (9 kept)
GROUP_C = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]
# Q1 = 30 + 0.25*10 = 32.5; Q3 = 70 + 0.75*10 = 77.5 -> 40, 50, 60, 70 kept, mean 55 (4 kept)
GROUP_D = [1] * 10  # constant: all 10 kept, mean 1
TAIL = [1000, 1000, 1000]
# group means [5.5, 2, 55, 1], sorted [1, 2, 5.5, 55]: Q1 at 0.75 = 1 + 0.75*(2-1) = 1.75;
# Q3 at 2.25 = 5.5 + 0.25*(55-5.5) = 17.875 -> 2 and 5.5 kept -> latency (2 + 5.5) / 2 = 3.75
RAW = GROUP_A + GROUP_B + GROUP_C + GROUP_D + TAIL


def test_hand_computed_protocol() -> None:
    result = summarize(RAW)
    assert result.group_means_ms == pytest.approx((5.5, 2.0, 55.0, 1.0))
    assert result.kept_per_group == (4, 9, 4, 10)
    assert result.kept_total == 27
    assert result.groups == 4
    assert result.dropped == 3
    assert result.groups_kept == 2
    assert result.latency_ms == pytest.approx(3.75)


def test_hand_computed_raw_statistics() -> None:
    result = summarize(RAW)
    assert result.runs == 43
    assert result.min_ms == 1.0
    assert result.max_ms == 1000.0
    # sum: A 55, B 18 + 100 = 118, C 450 + 1000 = 1450, D 10, tail 3000 -> 4633
    assert result.mean_ms == pytest.approx(4633 / 43)
    # sorted: eleven 1s (A, D), ten 2s (A, B) fill positions 0..20; position 21 (the median) is A's 3
    assert result.median_ms == 3.0
    assert result.iqr_ms == pytest.approx(np.percentile(RAW, 75) - np.percentile(RAW, 25))
    assert result.std_ms == pytest.approx(float(np.std(RAW)))


def test_lone_partial_group_is_used() -> None:
    # sorted 1, 2, 3, 4: Q1 at 0.75 = 1.75, Q3 at 2.25 = 3.25 -> 2 and 3 kept -> 2.5
    result = summarize([4, 1, 3, 2], group_size=10)
    assert (result.groups, result.dropped, result.kept_per_group) == (1, 0, (2,))
    assert result.latency_ms == pytest.approx(2.5)


def test_two_distinct_values_fall_back_to_their_mean() -> None:
    # Q1 = 1.5 and Q3 = 2.5 lie strictly between 1 and 3: both are kept, mean 2 (= the median)
    assert interquartile_mean([1.0, 3.0]) == (2.0, 2)
    # two groups -> two group means (1 and 3) -> 2
    assert summarize([1.0] * 10 + [3.0] * 10).latency_ms == pytest.approx(2.0)


def test_mobile_protocol_is_one_group() -> None:
    result = summarize([10, 11, 12, 13, 14, 15, 16, 17, 18, 90])
    assert MOBILE_RUNS == 10
    assert result.groups == 1
    # Q1 = 12 + 0.25 = 12.25, Q3 = 16 + 0.75 = 16.75 -> 13..16 kept -> 14.5
    assert result.latency_ms == pytest.approx(14.5)


def test_group_size_one_is_a_plain_interquartile_mean() -> None:
    result = summarize([1, 2, 3, 4, 100], group_size=1)
    # group means are the values; Q1 = 2, Q3 = 4 -> 2, 3, 4 kept -> 3
    assert result.groups == 5
    assert result.latency_ms == pytest.approx(3.0)


def test_to_dict_is_json_safe_and_raw_only_when_asked() -> None:
    result = summarize(np.array(RAW, dtype=np.float32))
    plain = result.to_dict()
    assert "raw_ms" not in plain
    assert json.loads(json.dumps(plain)) == plain
    with_raw = result.to_dict(include_raw=True)
    assert with_raw["raw_ms"] == [float(v) for v in RAW]
    assert json.loads(json.dumps(with_raw))["kept_total"] == 27


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "empty"),
        ([1.0, float("nan")], r"raw_ms\[1\] is not finite"),
        ([1.0, 2.0, float("inf")], r"raw_ms\[2\] is not finite"),
        ([1.0, -0.5], r"raw_ms\[1\] is negative"),
        ([[1.0, 2.0]], "flat sequence"),
        (["fast"], "sequence of numbers"),
    ],
)
def test_bad_timings_are_rejected(raw: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize(raw)


@pytest.mark.parametrize("group_size", [0, -3, 2.5, True])
def test_bad_group_size_is_rejected(group_size: object) -> None:
    with pytest.raises(ValueError, match="group_size"):
        summarize([1.0, 2.0], group_size=group_size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"runs": 0}, "runs"),
        ({"runs": 10.0}, "runs"),
        ({"warmup": -1}, "warmup"),
        ({"group_size": 0}, "group_size"),
        ({"pause_s": -0.1}, "pause_s"),
        ({"pause_s": float("nan")}, "pause_s"),
        ({"pause_s": "1"}, "pause_s"),
    ],
)
def test_bad_params_are_rejected(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ProtocolParams(**kwargs)


def test_default_params() -> None:
    assert ProtocolParams().to_dict() == {"runs": 1000, "warmup": 10, "group_size": 10, "pause_s": 0.0}


# -- properties ------------------------------------------------------------------------------------------
timings = st.lists(
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False), min_size=1, max_size=120
)


@given(timings, st.integers(min_value=1, max_value=15))
@settings(max_examples=300, deadline=None)
def test_result_lies_within_min_and_max(raw: list[float], group_size: int) -> None:
    result = summarize(raw, group_size=group_size)
    tol = 1e-9 * max(1.0, result.max_ms)
    assert result.min_ms - tol <= result.latency_ms <= result.max_ms + tol
    assert result.groups * group_size + result.dropped == len(raw) or result.groups == 1
    assert all(1 <= k <= group_size for k in result.kept_per_group)


@given(
    st.floats(min_value=0.01, max_value=1e3),
    st.integers(min_value=1, max_value=30),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_few_wild_outliers_do_not_move_the_result(base: float, groups: int, data: st.DataObject) -> None:
    # Up to 2 outliers per group (anywhere in it, high or low) stay outside every group's [Q1, Q3].
    raw = [base] * (groups * 10)
    for g in range(groups):
        positions = data.draw(st.lists(st.integers(0, 9), max_size=2, unique=True))
        for pos in positions:
            factor = data.draw(st.sampled_from([0.0, 0.01, 50.0, 1e4]))
            raw[g * 10 + pos] = base * factor
    result = summarize(raw)
    assert result.latency_ms == pytest.approx(base, rel=1e-12)


@given(st.lists(timings.filter(lambda v: len(v) >= 10), min_size=1, max_size=1), st.randoms())
@settings(max_examples=200, deadline=None)
def test_permutation_within_groups_does_not_change_the_result(raws: list[list[float]], rnd) -> None:
    raw = raws[0]
    shuffled: list[float] = []
    for start in range(0, len(raw), 10):
        group = raw[start : start + 10]
        rnd.shuffle(group)
        shuffled.extend(group)
    a, b = summarize(raw), summarize(shuffled)
    assert b.latency_ms == pytest.approx(a.latency_ms, rel=1e-12, abs=1e-12)
    assert b.kept_per_group == a.kept_per_group


# -- runner --------------------------------------------------------------------------------------------
class FakeModel:
    """Advances a fake clock by a programmed duration per call and records what it saw."""

    def __init__(self, durations_ns: list[int], fail_at: int | None = None) -> None:
        self.now = 0
        self.durations = iter(durations_ns)
        self.inputs: list[int] = []
        self.gc_enabled: list[bool] = []
        self.fail_at = fail_at

    def clock(self) -> int:
        return self.now

    def __call__(self, x: np.ndarray) -> float:
        if self.fail_at is not None and len(self.inputs) == self.fail_at:
            raise RuntimeError("model crashed")
        self.inputs.append(int(x[0]))
        self.gc_enabled.append(gc.isenabled())
        self.now += next(self.durations)
        return float(x[0])


class Inputs:
    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> np.ndarray:
        self.made += 1
        return np.array([self.made], dtype=np.float32)


def test_runner_counts_calls_and_uses_fresh_inputs_per_group(monkeypatch: pytest.MonkeyPatch) -> None:
    params = ProtocolParams(runs=25, warmup=3, group_size=10)
    durations = [999_000_000] * 3 + [(k + 1) * 1_000_000 for k in range(25)]  # warm-up ones are not timed
    model, inputs = FakeModel(durations), Inputs()
    monkeypatch.setattr(protocol.time, "perf_counter_ns", model.clock)
    result = time_callable(model, inputs, params)
    assert len(model.inputs) == 28
    # input 1 for warm-up, then inputs 2, 3, 4 for the groups of 10, 10 and 5
    assert model.inputs == [1] * 3 + [2] * 10 + [3] * 10 + [4] * 5
    assert inputs.made == 4
    assert result.raw_ms == tuple(float(k + 1) for k in range(25))
    assert result.runs == 25 and result.dropped == 5 and result.groups == 2
    # groups 1..10 and 11..20: kept 4..7 and 14..17 -> 5.5 and 15.5 -> two means -> 10.5
    assert result.latency_ms == pytest.approx(10.5)


def test_runner_disables_gc_while_timing_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gc.isenabled()
    model = FakeModel([1000] * 20)
    monkeypatch.setattr(protocol.time, "perf_counter_ns", model.clock)
    time_callable(model, Inputs(), ProtocolParams(runs=15, warmup=5))
    assert model.gc_enabled == [False] * 20
    assert gc.isenabled()


def test_runner_keeps_gc_off_if_it_was_off(monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeModel([1000] * 10)
    monkeypatch.setattr(protocol.time, "perf_counter_ns", model.clock)
    gc.disable()
    try:
        time_callable(model, Inputs(), ProtocolParams(runs=10, warmup=0))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_runner_restores_gc_on_error() -> None:
    model = FakeModel([1000] * 100, fail_at=7)
    with pytest.raises(RuntimeError, match="model crashed"):
        time_callable(model, Inputs(), ProtocolParams(runs=20, warmup=2))
    assert gc.isenabled()


def test_runner_pauses_between_groups_only(monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeModel([1000] * 40)
    sleeps: list[float] = []
    monkeypatch.setattr(protocol.time, "perf_counter_ns", model.clock)
    monkeypatch.setattr(protocol.time, "sleep", sleeps.append)
    time_callable(model, Inputs(), ProtocolParams(runs=30, warmup=4, pause_s=0.25))
    assert sleeps == [0.25, 0.25]  # 3 groups -> 2 pauses, none before the first or after the last


def test_runner_times_a_real_callable() -> None:
    # perf_counter_ns of a ~0.2 ms busy loop: positive, finite and close to its own median
    def busy(x: np.ndarray) -> float:
        return float(np.sum(np.sqrt(np.arange(20_000, dtype=np.float64) + x[0])))

    result = time_callable(busy, Inputs(), ProtocolParams(runs=30, warmup=2))
    assert result.runs == 30
    assert all(math.isfinite(v) and v > 0 for v in result.raw_ms)
    assert result.min_ms <= result.latency_ms <= result.max_ms
