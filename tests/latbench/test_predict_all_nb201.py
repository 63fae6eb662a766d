"""latbench.graph.predict_all_nb201: a batch predictor applied to every valid NB201 cell, NaN elsewhere."""

from __future__ import annotations

import numpy as np

from latbench import nb201
from latbench.graph import encode_all_nb201, predict_all_nb201


def test_values_by_index_and_nan_for_invalid_cells() -> None:
    enc = encode_all_nb201()
    seen: list[int] = []

    def convs(adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        seen.append(adjacency.shape[0])
        return features[:, :, :2].sum(axis=(1, 2)).astype(np.float64)

    out = predict_all_nb201(convs)
    assert out.shape == (nb201.NUM_ARCHS,)
    assert seen == [int(enc.valid.sum())]  # one batch of the valid cells only
    assert np.all(np.isnan(out[~enc.valid])) and np.all(np.isfinite(out[enc.valid]))
    some = np.flatnonzero(enc.valid)[[0, 7, -1]]
    np.testing.assert_array_equal(out[some], enc.features[some][:, :, :2].sum(axis=(1, 2)))
