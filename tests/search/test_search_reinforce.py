"""search.reinforce: the LSTM controller samples from the distribution it scores, and learns."""

from __future__ import annotations

import numpy as np
import pytest

from search.reinforce import Controller
from search.space import NUM_EDGES, NUM_OPS

pytestmark = pytest.mark.slow  # a TensorFlow model (small: the file runs in seconds)


@pytest.fixture(scope="module")
def controller() -> Controller:
    return Controller(hidden=16)


def test_reset_is_seeded(controller: Controller) -> None:
    controller.reset(np.random.default_rng(0))
    a = [controller.sample(np.random.default_rng(1)) for _ in range(5)]
    controller.reset(np.random.default_rng(0))
    b = [controller.sample(np.random.default_rng(1)) for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(x.shape == (NUM_EDGES,) and x.min() >= 0 and x.max() < NUM_OPS for x in a)


def test_samples_follow_the_scored_distribution(controller: Controller) -> None:
    controller.reset(np.random.default_rng(2))
    target = np.array([3, 3, 3, 1, 3, 3])
    while np.exp(controller.log_prob(target)) < 0.2:  # make one architecture common
        controller.update(target, 1.0)
    p = float(np.exp(controller.log_prob(target)))
    rng = np.random.default_rng(3)
    n = 2000
    hits = sum(np.array_equal(controller.sample(rng), target) for _ in range(n))
    assert abs(hits / n - p) < 4 * np.sqrt(p * (1 - p) / n)  # binomial, 4 sigma


def test_update_raises_the_probability_of_rewarded_samples(controller: Controller) -> None:
    controller.reset(np.random.default_rng(4))
    ops = np.array([3, 3, 3, 1, 3, 3])
    before = controller.log_prob(ops)
    for _ in range(20):
        controller.update(ops, 1.0)
    assert controller.log_prob(ops) > before + 1.0
    other = np.array([0, 0, 0, 0, 0, 0])
    before = controller.log_prob(other)
    controller.update(other, -1.0)
    assert controller.log_prob(other) < before
