"""Identical-graph group medians (LatBench's noise floor, denoised targets, reference columns)."""

from __future__ import annotations

import numpy as np
import pytest

from latbench.graph import group_medians


def test_medians_per_group_ignore_nans_and_keep_empty_groups_nan() -> None:
    values = np.array([1.0, 3.0, 2.0, np.nan, 10.0, 7.0])
    groups = np.array([0, 0, 0, 2, 2, 3])
    out = group_medians(values, groups, n_groups=5)
    assert out.shape == (5,)
    np.testing.assert_allclose(out[[0, 2, 3]], [2.0, 10.0, 7.0])
    assert np.isnan(out[1]) and np.isnan(out[4])  # no member; only NaNs would be NaN too


def test_columns_are_separate_devices() -> None:
    values = np.array([[1.0, np.nan], [5.0, 4.0], [3.0, 8.0]])
    out = group_medians(values, np.array([1, 1, 0]))
    np.testing.assert_allclose(out, [[3.0, 8.0], [3.0, 4.0]])


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="same first dimension"):
        group_medians(np.ones(3), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=">= 0"):
        group_medians(np.ones(2), np.array([0, -1]))
    assert group_medians(np.ones(0), np.zeros(0, dtype=int)).shape == (0,)
