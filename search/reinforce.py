"""REINFORCE (Williams 1992) with an LSTM controller over the 6 NB201 edges, in TensorFlow.

The controller is an LSTM that emits one op per edge, in arch-string edge order; each step's input is
the embedding of the previous op (a start token first) and each edge has its own softmax head. A
sample is drawn by inverse-CDF with uniforms from the run's NumPy generator, so a seed fixes the run.

Reward: the validation accuracy the oracle reports, as a fraction. A sample the latency filter rejects
(invalid cell, or predicted over the limit) is not trained and gets ``penalty`` as its reward. The
update is the policy gradient of ``-(reward - baseline) * log p(arch)`` minus an entropy bonus, with an
exponential moving average of the trained models' rewards as the baseline (decay 0.9, as NB201's
REINFORCE baseline). In cache mode re-sampling a trained model costs no budget but still updates the
controller; ``max_samples`` (default 50 per model of budget) bounds the loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.problem import Problem, SearchResult
from search.space import NUM_EDGES, NUM_OPS

NAME = "reinforce"


class Controller:
    """The LSTM policy. Built (and its two functions traced) once; :meth:`reset` re-seeds it per run."""

    def __init__(self, hidden: int = 32, learning_rate: float = 0.01, entropy_weight: float = 0.01) -> None:
        import tensorflow as tf

        from search._tf import Adam

        self.hidden, self.learning_rate, self.entropy_weight = hidden, learning_rate, entropy_weight
        h = hidden
        self.embed = tf.Variable(tf.zeros((NUM_OPS + 1, h)), name="embed")  # last row: start token
        self.w = tf.Variable(tf.zeros((h, 4 * h)), name="lstm_w")
        self.u = tf.Variable(tf.zeros((h, 4 * h)), name="lstm_u")
        self.b = tf.Variable(tf.zeros((4 * h,)), name="lstm_b")
        self.heads = tf.Variable(tf.zeros((NUM_EDGES, h, NUM_OPS)), name="heads")
        self.head_b = tf.Variable(tf.zeros((NUM_EDGES, NUM_OPS)), name="head_b")
        self.variables = [self.embed, self.w, self.u, self.b, self.heads, self.head_b]
        self.optimizer = Adam(self.variables, learning_rate)
        self._sample = tf.function(self._sample_fn)
        self._update = tf.function(self._update_fn)

    def reset(self, rng: np.random.Generator) -> None:
        from search._tf import glorot_uniform, orthogonal

        h = self.hidden
        self.embed.assign(rng.uniform(-0.1, 0.1, (NUM_OPS + 1, h)).astype(np.float32))
        self.w.assign(glorot_uniform((h, 4 * h), rng))
        self.u.assign(np.concatenate([orthogonal((h, h), rng) for _ in range(4)], axis=1))
        bias = np.zeros(4 * h, np.float32)
        bias[h : 2 * h] = 1.0  # forget gate bias 1 (Jozefowicz et al.)
        self.b.assign(bias)
        self.heads.assign(np.stack([glorot_uniform((h, NUM_OPS), rng) for _ in range(NUM_EDGES)]))
        self.head_b.assign(np.zeros((NUM_EDGES, NUM_OPS), np.float32))
        self.optimizer.reset(self.learning_rate)

    # -- the network -------------------------------------------------------------------------------
    def _sample_fn(self, uniforms: Any) -> Any:
        import tensorflow as tf

        h = tf.zeros((1, self.hidden))
        c = tf.zeros((1, self.hidden))
        token = tf.constant(NUM_OPS)
        ops = []
        for edge in range(NUM_EDGES):
            x = tf.gather(self.embed, token)[None, :]
            h, c = self._cell(x, h, c)
            probs = tf.nn.softmax((h @ self.heads[edge])[0] + self.head_b[edge])
            drawn = tf.reduce_sum(tf.cast(tf.cumsum(probs) < uniforms[edge], tf.int32))
            token = tf.minimum(drawn, NUM_OPS - 1)
            ops.append(token)
        return tf.stack(ops)

    def _cell(self, x: Any, h: Any, c: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        i, f, g, o = tf.split(x @ self.w + h @ self.u + self.b, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def _log_prob(self, ops: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        h = tf.zeros((1, self.hidden))
        c = tf.zeros((1, self.hidden))
        token = tf.constant(NUM_OPS)
        log_p = tf.constant(0.0)
        entropy = tf.constant(0.0)
        for edge in range(NUM_EDGES):
            x = tf.gather(self.embed, token)[None, :]
            h, c = self._cell(x, h, c)
            log_probs = tf.nn.log_softmax((h @ self.heads[edge])[0] + self.head_b[edge])
            log_p += log_probs[ops[edge]]
            entropy -= tf.reduce_sum(tf.exp(log_probs) * log_probs)
            token = ops[edge]
        return log_p, entropy

    def _update_fn(self, ops: Any, advantage: Any) -> Any:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            log_p, entropy = self._log_prob(ops)
            loss = -advantage * log_p - self.entropy_weight * entropy
        self.optimizer.apply(tape.gradient(loss, self.variables))
        return log_p

    # -- what the search uses --------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(self._sample(tf.constant(rng.random(NUM_EDGES), tf.float32)), dtype=np.int64)

    def update(self, ops: np.ndarray, advantage: float) -> None:
        import tensorflow as tf

        self._update(tf.constant(ops, tf.int32), tf.constant(advantage, tf.float32))

    def log_prob(self, ops: np.ndarray) -> float:
        import tensorflow as tf

        return float(self._log_prob(tf.constant(ops, tf.int32))[0])


def reinforce(
    problem: Problem,
    total: int,
    seed: int | None = None,
    controller: Controller | None = None,
    baseline_decay: float = 0.9,
    penalty: float = 0.0,
    max_samples: int | None = None,
) -> SearchResult:
    """Run REINFORCE; pass a ``controller`` to reuse one built network across runs (it is re-seeded)."""
    if not 0.0 <= baseline_decay < 1.0:
        raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
    oracle, rng = problem.start(total, seed)
    ctrl = controller if controller is not None else Controller()
    ctrl.reset(rng)
    admissible = problem.filter.mask
    limit = max_samples if max_samples is not None else 50 * total
    baseline: float | None = None
    samples = rejected = 0
    stopped = "budget"
    while not oracle.exhausted:
        if samples >= limit:
            stopped = "max_samples"
            break
        ops = ctrl.sample(rng)
        index = int(problem.space.index_of_ops(ops))
        samples += 1
        if admissible[index]:
            reward = oracle.train(index, NAME) / 100.0
            advantage = 0.0 if baseline is None else reward - baseline
            baseline = reward if baseline is None else baseline_decay * baseline + (1 - baseline_decay) * reward
        else:
            rejected += 1
            advantage = penalty - (baseline if baseline is not None else penalty)
        if advantage != 0.0:
            ctrl.update(ops, advantage)
    info = {
        "samples": samples,
        "rejected_by_filter": rejected,
        "stopped": stopped,
        "hidden": ctrl.hidden,
        "learning_rate": ctrl.learning_rate,
    }
    return problem.finish(NAME, oracle, seed, info)
