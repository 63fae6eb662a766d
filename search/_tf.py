"""Small TensorFlow helpers for the searches: a resettable Adam and NumPy-seeded initial values.

The search code reuses one compiled network across many runs (compiling costs more than a short
training), so a run must be able to put fresh weights and a fresh optimizer state into the same
variables. Keras optimizers keep private state that cannot be cleanly reset; this Adam can.
Initial values are drawn with a NumPy generator so a run's seed alone fixes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf


class Adam:
    """Adam (Kingma & Ba) over a fixed list of variables, with optional decoupled weight decay."""

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        learning_rate: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float = 0.0,
    ) -> None:
        self.variables = list(variables)
        self.lr = tf.Variable(learning_rate, dtype=tf.float32, trainable=False)
        self.beta1, self.beta2, self.epsilon, self.weight_decay = beta1, beta2, epsilon, weight_decay
        self.step = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]

    def reset(self, learning_rate: float | None = None) -> None:
        self.step.assign(0.0)
        for slot in (*self.m, *self.v):
            slot.assign(tf.zeros_like(slot))
        if learning_rate is not None:
            self.lr.assign(learning_rate)

    def apply(self, grads: Sequence[tf.Tensor | None]) -> None:
        """One update; call inside a ``tf.function``."""
        self.step.assign_add(1.0)
        t = self.step
        scale = self.lr * tf.sqrt(1.0 - tf.pow(self.beta2, t)) / (1.0 - tf.pow(self.beta1, t))
        for var, grad, m, v in zip(self.variables, grads, self.m, self.v, strict=True):
            if grad is None:
                continue
            grad = tf.convert_to_tensor(grad)  # gathers (embeddings) give IndexedSlices
            m.assign(self.beta1 * m + (1.0 - self.beta1) * grad)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(grad))
            update = scale * m / (tf.sqrt(v) + self.epsilon)
            if self.weight_decay:
                update += self.lr * self.weight_decay * var
            var.assign_sub(update)


def glorot_uniform(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    fan_in, fan_out = (shape[0], shape[-1]) if len(shape) >= 2 else (shape[0], shape[0])
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=tuple(shape)).astype(np.float32)


def orthogonal(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    rows, cols = shape[0], int(np.prod(shape[1:]))
    q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q[:rows, :cols].reshape(tuple(shape)).astype(np.float32)
