"""The PyTorch NB201 network: same parameters as the Keras model and the analytic count, and, with the
Keras weights and TensorFlow's padding, the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the torch extra (in `all`, which CI installs)

from latbench.cost import InvalidCellError, network_cost
from latbench.graph import nb201_cell, nb201_unpruned
from latbench.models.torch_nb201 import build_nb201_torch, load_keras_weights, trainable_params_torch
from latbench.nb201 import Arch


@pytest.mark.parametrize("index", [0, 45, 123, 15624])
def test_params_equal_the_analytic_count(index: int) -> None:
    cell = nb201_cell(Arch.from_index(index))
    assert trainable_params_torch(build_nb201_torch(cell)) == network_cost(cell).params


def test_unpruned_cell_params_equal_the_analytic_count() -> None:
    cell = nb201_unpruned(Arch.from_index(123))
    assert trainable_params_torch(build_nb201_torch(cell)) == network_cost(cell).params


def test_invalid_cells_are_refused() -> None:
    invalid = next(a for a in (Arch.from_index(i) for i in range(200)) if not nb201_cell(a).valid)
    with pytest.raises(InvalidCellError):
        build_nb201_torch(nb201_cell(invalid))


def test_same_seed_same_weights_and_calibrated_activations() -> None:
    cell = nb201_cell(Arch.from_index(123))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = build_nb201_torch(cell, seed=1)(x), build_nb201_torch(cell, seed=1)(x)
        c = build_nb201_torch(cell, seed=2)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.abs().max()) < 100  # BN calibrated: no blow-up through the summed branches


@pytest.mark.slow
@pytest.mark.parametrize("index", [45, 123])
def test_keras_weights_give_the_keras_outputs(index: int) -> None:
    from latbench.measure import build_model, clear_session
    from latbench.models.keras_nb201 import trainable_params

    cell = nb201_cell(Arch.from_index(index))
    keras_model, _ = build_model(cell)
    net = build_nb201_torch(cell, tf_padding=True)
    assert trainable_params(keras_model) == trainable_params_torch(net)
    assert load_keras_weights(net, keras_model) > 0
    x = np.random.default_rng(3).standard_normal((2, 32, 32, 3)).astype("float32")
    expected = np.asarray(keras_model(x, training=False))
    with torch.no_grad():
        got = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
    clear_session()


@pytest.mark.slow
def test_weight_transfer_refuses_a_different_network() -> None:
    from latbench.measure import build_model, clear_session

    keras_model, _ = build_model(nb201_cell(Arch.from_index(45)))
    with pytest.raises(ValueError, match="the models differ"):
        load_keras_weights(build_nb201_torch(nb201_cell(Arch.from_index(123))), keras_model)
    clear_session()
