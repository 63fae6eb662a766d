"""Binary relation predictors as BRP-NAS uses them: learn "is A better than B" from trained pairs, rank.

The protocol (:class:`RelationModel`) is what :mod:`search.brp` needs::

    model.reset(seed)                       # a new run: fresh weights, seeded
    model.fit(indices, accuracies)          # all ordered pairs of the models trained so far
    model.rank(candidate_indices)           # -> candidates, best first

Implementations:

* :class:`GCNRelationModel` — the paper's predictor: a GCN trunk (``predictors.gcn.build_trunk``) embeds
  each graph; a linear head on the concatenated pair ``[e_a, e_b]`` gives the logit of "a is better".
* :class:`OneHotRelationModel` — the same pairwise logistic objective on one-hot edge ops, in NumPy:
  a cheap binary relation predictor for tests and quick runs.
* :class:`KernelRelationModel` — not the paper's: the same pairwise objective with a kernel score on
  structural descriptors of the pruned cell (``predictors.structural``) and one-hot ops, fitted exactly
  by Newton's method in well under a second, so BRP-NAS can refit it after every trained model.
* :class:`LinearRelationModel` — not the paper's: the same pairwise objective, linear in those
  descriptors, ranked by an upper confidence bound from the fit's curvature (optimism in the face of
  what the trained models leave uncertain).
* :class:`ScoreRelationModel` — ranks by a given score (e.g. the true accuracy): an oracle for tests.
* :func:`binary_predictor_adapter` — wraps ``predictors.binary.BinaryRelationPredictor`` (slower: it
  trains on mini-batches of pairs for whole epochs).

Ranking without O(n²) comparisons: with a head linear in ``[e_a, e_b]`` the logit of "a beats b" is
``u·e_a + v·e_b + c``, increasing in ``u·e_a`` for every opponent b. So sorting candidates by
``u·e_a`` is exactly sorting them by their win probability against any opponent, and by their
expected number of wins against any set of opponents: one embedding pass ranks every candidate.

Pair targets: ``hard`` is 1 when a's accuracy is higher (0.5 on ties); ``soft`` is
``sigmoid((acc_a - acc_b) / temperature)`` with a temperature in accuracy points: the softmax of the
two accuracies, so the sigmoid cross-entropy is the KL divergence to it (up to a constant). Without a
temperature, ``soft`` min-max normalises the accuracies over the trained set first, as the public
BRP-NAS code (those targets are close to 0.5 for most pairs and ranked NB201 worse than hard ones:
Spearman 0.68 vs 0.88, 100 random training models, 4x128 GCN, 250 steps). Soft targets with
temperature 1 say *how much* better a model is, so a pair of near-equal models separated by SGD noise
weighs little; in the BRP-NAS sweep (6 tuning runs per configuration, ``brp_sweep.md``) they reached
the best cells earlier than hard ones at K=40, but over 50 benchmark runs that configuration beat the
paper's (hard targets, K=100) only up to ~50 trained models (``search_fig6.md``, ``*_tuned`` arms).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from search.space import Space, nb201_space

TARGETS = ("soft", "hard")


@runtime_checkable
class RelationModel(Protocol):
    def reset(self, seed: int | None) -> None: ...

    def fit(self, indices: np.ndarray, accuracies: np.ndarray) -> None: ...

    def rank(self, candidates: np.ndarray) -> np.ndarray: ...


def pair_targets(accuracies: np.ndarray, target: str = "hard", temperature: float | None = None) -> np.ndarray:
    """(N, N) probability that model i is better than model j (diagonal 0.5, masked out in training)."""
    acc = np.asarray(accuracies, dtype=np.float64)
    if target == "soft" and temperature is not None:
        return 1.0 / (1.0 + np.exp(-(acc[:, None] - acc[None, :]) / temperature))
    if target == "soft":
        span = float(acc.max() - acc.min()) if acc.size else 0.0
        norm = (acc - acc.min()) / span if span > 0 else np.zeros_like(acc)
        return 1.0 / (1.0 + np.exp(-(norm[:, None] - norm[None, :])))
    if target == "hard":
        return 0.5 * (np.sign(acc[:, None] - acc[None, :]) + 1.0)
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def _check_fit_args(indices: np.ndarray, accuracies: np.ndarray, space: Space) -> tuple[np.ndarray, np.ndarray]:
    idx = space.check_indices(indices)
    acc = np.asarray(accuracies, dtype=np.float64).reshape(-1)
    if acc.shape[0] != idx.shape[0]:
        raise ValueError(f"got {acc.shape[0]} accuracies for {idx.shape[0]} models")
    if idx.shape[0] < 2:
        raise ValueError(f"a relation predictor needs at least 2 trained models, got {idx.shape[0]}")
    if not np.all(np.isfinite(acc)):
        raise ValueError("accuracies must be finite numbers")
    return idx, acc


def _order(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Candidates by descending score; ties broken by index so the order is reproducible."""
    return candidates[np.lexsort((candidates, -scores))]


class _Scored:
    """Ranking from a per-index score array (NaN before the first fit)."""

    space: Space
    _scores: np.ndarray | None = None

    def rank(self, candidates: np.ndarray) -> np.ndarray:
        if self._scores is None:
            raise RuntimeError("the relation predictor is not fitted yet")
        cand = self.space.check_indices(candidates)
        return _order(cand, self._scores[cand])

    def reset(self, seed: int | None) -> None:
        """Forget the last fit and reseed (models with more state override this)."""
        self._rng = np.random.default_rng(seed)
        self._scores = None
        self.fits: list[int] = []


class ScoreRelationModel(_Scored):
    """Ranks by a fixed score per index (plus optional Gaussian noise per fit): for tests and bounds."""

    def __init__(self, scores: np.ndarray, noise: float = 0.0, space: Space | None = None) -> None:
        self.space = space or nb201_space()
        self.scores = np.asarray(scores, dtype=np.float64)
        if self.scores.shape != (self.space.size,):
            raise ValueError(f"need one score per NB201 index ({self.space.size}), got shape {self.scores.shape}")
        self.noise = noise
        self.fits: list[int] = []  # training-set size of each fit (what tests check)
        self.reset(None)

    def fit(self, indices: np.ndarray, accuracies: np.ndarray) -> None:
        idx, _ = _check_fit_args(indices, accuracies, self.space)
        self.fits.append(int(idx.shape[0]))
        noise = self._rng.normal(0.0, self.noise, self.space.size) if self.noise else 0.0
        self._scores = np.nan_to_num(self.scores, nan=-np.inf) + noise


class OneHotRelationModel(_Scored):
    """Pairwise logistic regression on one-hot edge ops (30 features), fitted by gradient descent."""

    def __init__(
        self,
        steps: int = 300,
        learning_rate: float = 0.5,
        l2: float = 1e-3,
        target: str = "hard",
        temperature: float | None = None,
        space: Space | None = None,
    ) -> None:
        _check_target(target)
        self.space = space or nb201_space()
        self.steps, self.learning_rate, self.l2, self.target = steps, learning_rate, l2, target
        self.temperature = temperature
        self.features = onehot_ops(self.space)
        self.fits: list[int] = []
        self.reset(None)

    def fit(self, indices: np.ndarray, accuracies: np.ndarray) -> None:
        idx, acc = _check_fit_args(indices, accuracies, self.space)
        self.fits.append(int(idx.shape[0]))
        x = self.features[idx]
        t = pair_targets(acc, self.target, self.temperature)
        mask = 1.0 - np.eye(idx.shape[0])
        w = self._rng.normal(0.0, 0.01, x.shape[1])
        for _ in range(self.steps):
            s = x @ w
            p = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :])))
            g = (p - t) * mask  # d loss / d logit(i beats j)
            grad_s = g.sum(axis=1) - g.sum(axis=0)
            w -= self.learning_rate * (x.T @ grad_s / mask.sum() + self.l2 * w)
        self._scores = self.features @ w


def onehot_ops(space: Space) -> np.ndarray:
    """(size, 30) one-hot encoding of every index's 6 edge operations."""
    x = np.zeros((space.size, 30))
    x[np.arange(space.size)[:, None], np.arange(6) * 5 + space.ops] = 1.0
    return x


def descriptor_features(space: Space) -> np.ndarray:
    """(size, 54) structural descriptors of each pruned cell plus one-hot edge ops, standardised on valid cells."""
    from predictors.structural import structural_features

    enc = space.encodings
    x = np.concatenate([structural_features(enc.adjacency, enc.features), onehot_ops(space)], axis=1)
    valid = space.valid_indices
    mean, std = x[valid].mean(axis=0), x[valid].std(axis=0)
    return (x - mean) / np.where(std > 0, std, 1.0)


def _pair_loss_derivatives(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian, with respect to the per-model scores, of the pair loss averaged over ordered pairs.

    The loss is the sigmoid cross-entropy of P(i beats j) = sigmoid(s_i - s_j) against ``targets[i, j]``.
    """
    n = scores.shape[0]
    mask = 1.0 - np.eye(n)
    pairs = mask.sum()
    p = 1.0 / (1.0 + np.exp(-(scores[:, None] - scores[None, :])))
    g = (p - targets) * mask / pairs  # d loss / d logit(i beats j)
    w = p * (1.0 - p) * mask / pairs
    return g.sum(axis=1) - g.sum(axis=0), np.diag(w.sum(axis=1) + w.sum(axis=0)) - w - w.T


class KernelRelationModel(_Scored):
    """Binary relation predictor with a kernel score: P(a beats b) = sigmoid(s(a) - s(b)).

    ``s(x) = sum_i alpha_i k(x, x_i)`` over the trained models, with an RBF kernel on standardised
    structural descriptors of the pruned cell (input -> output paths and their ops, see
    ``predictors.structural``) plus one-hot edge ops. ``alpha`` minimises the pair loss of
    :class:`GCNRelationModel` (sigmoid cross-entropy to the pair targets over every ordered pair: the KL
    divergence to the softmax of the two accuracies with soft targets) plus ``l2/2 * alpha' K alpha``.
    The loss is convex in ``alpha``, so Newton's method fits it exactly in a few steps (n <= a few
    hundred): no seed, no learning-rate schedule, and ~10 ms per fit, cheap enough to refit after every
    trained model. Antisymmetric by construction, and ranking by ``s`` is exact (see the module notes).

    ``length_scale`` is in units of sqrt(feature count) of standardised features: large values make the
    score nearly linear in the descriptors, which ranked NB201 best on the tuning seeds
    (``benchmarks/results/search/brp_sweep.md``, round 4).
    """

    def __init__(
        self,
        length_scale: float = 16.0,
        l2: float = 0.01,
        target: str = "soft",
        temperature: float | None = 1.0,
        max_newton_steps: int = 30,
        space: Space | None = None,
    ) -> None:
        _check_target(target)
        if not length_scale > 0 or not l2 > 0:
            raise ValueError(f"need length_scale > 0 and l2 > 0, got {length_scale}, {l2}")
        self.space = space or nb201_space()
        self.length_scale, self.l2, self.target, self.temperature = length_scale, l2, target, temperature
        self.max_newton_steps = max_newton_steps
        self.features = descriptor_features(self.space)
        self.fits: list[int] = []
        self.newton_steps: list[int] = []
        self.reset(None)

    def reset(self, seed: int | None) -> None:
        self._scores = None  # deterministic: nothing to seed
        self.alpha = np.zeros(0)
        self.fits, self.newton_steps = [], []

    def kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
        return np.exp(-np.maximum(sq, 0.0) / (2.0 * self.length_scale**2 * a.shape[1]))

    def fit(self, indices: np.ndarray, accuracies: np.ndarray) -> None:
        idx, acc = _check_fit_args(indices, accuracies, self.space)
        n = idx.shape[0]
        k = self.kernel(self.features[idx], self.features[idx])
        t = pair_targets(acc, self.target, self.temperature)
        alpha = np.zeros(n)
        steps = 0
        while steps < self.max_newton_steps:
            steps += 1
            grad_s, hess_s = _pair_loss_derivatives(k @ alpha, t)
            grad = k @ grad_s + self.l2 * (k @ alpha)
            hess = k @ hess_s @ k + self.l2 * k + 1e-9 * np.eye(n)
            delta = np.linalg.solve(hess, grad)
            alpha -= delta
            if np.abs(delta).max() < 1e-7:
                break
        self.alpha = alpha  # the fitted score function's weights on the trained models (kept for checks)
        self.fits.append(n)
        self.newton_steps.append(steps)
        scores = np.full(self.space.size, -np.inf)
        valid = self.space.valid_indices
        scores[valid] = self.kernel(self.features[valid], self.features[idx]) @ alpha
        self._scores = scores


class LinearRelationModel(_Scored):
    """Binary relation predictor linear in the cell's descriptors, ranked optimistically.

    P(a beats b) = sigmoid(w·x_a - w·x_b) on the standardised descriptors of
    :class:`KernelRelationModel` (structural path features plus one-hot edge ops, 54 in all), fitted
    exactly by Newton's method on the same pair loss plus ``l2/2 |w|²`` (no seed, a few milliseconds).

    Ranking: with ``optimism`` = 0, by the fitted score ``w·x`` (exactly the relation's order). With
    ``optimism`` = β > 0, by ``w·x + β·sqrt(x' H⁻¹ x)``, H the curvature of the fitted objective at w:
    a Laplace-style upper confidence bound. Candidates whose descriptors point where the trained models
    say little (combinations the search has not tried) move up, so a search does not keep refining one
    region because the first random models happened to rank another feature low. The pair loss is
    averaged over pairs, so the bonus does not shrink as models accumulate: β sets a steady level of
    exploration rather than a posterior that concentrates. On the tuning seeds this reached NB201's best
    CIFAR-100 cell within 50 trained models in every run (``benchmarks/results/search/brp_sweep.md``,
    round 5).
    """

    def __init__(
        self,
        l2: float = 0.1,
        optimism: float = 0.4,
        target: str = "soft",
        temperature: float | None = 1.0,
        max_newton_steps: int = 30,
        space: Space | None = None,
    ) -> None:
        _check_target(target)
        if not l2 > 0 or not optimism >= 0:
            raise ValueError(f"need l2 > 0 and optimism >= 0, got {l2}, {optimism}")
        self.space = space or nb201_space()
        self.l2, self.optimism, self.target, self.temperature = l2, optimism, target, temperature
        self.max_newton_steps = max_newton_steps
        self.features = descriptor_features(self.space)
        self._features32 = self.features.astype(np.float32)  # the bonus needs no more precision than this
        self.reset(None)

    def reset(self, seed: int | None) -> None:
        self._scores = None  # deterministic: nothing to seed
        self.weights = np.zeros(self.features.shape[1])
        self.fits: list[int] = []
        self.newton_steps: list[int] = []

    def fit(self, indices: np.ndarray, accuracies: np.ndarray) -> None:
        idx, acc = _check_fit_args(indices, accuracies, self.space)
        x = self.features[idx]
        t = pair_targets(acc, self.target, self.temperature)
        eye = np.eye(x.shape[1])
        # Start from the previous fit's weights: a search refits after every model, so they are close and
        # Newton needs fewer steps; the objective is strictly convex, so the optimum is the same.
        w = np.zeros(x.shape[1])
        steps = 0
        while steps < self.max_newton_steps:
            steps += 1
            grad_s, hess_s = _pair_loss_derivatives(x @ w, t)
            hess = x.T @ hess_s @ x + self.l2 * eye
            delta = np.linalg.solve(hess, x.T @ grad_s + self.l2 * w)
            w -= delta
            if np.abs(delta).max() < 1e-8:
                break
        _, hess_s = _pair_loss_derivatives(x @ w, t)  # the curvature at the fitted weights
        hess = x.T @ hess_s @ x + self.l2 * eye
        self.weights = w
        self.fits.append(int(idx.shape[0]))
        self.newton_steps.append(steps)
        valid = self.space.valid_indices
        scores = np.full(self.space.size, -np.inf)
        scores[valid] = self.features[valid] @ w
        if self.optimism > 0:
            root = np.linalg.cholesky(np.linalg.inv(hess)).astype(np.float32)
            spread = np.sqrt(np.square(self._features32[valid] @ root).sum(axis=1), dtype=np.float64)
            scores[valid] += self.optimism * spread
        self._scores = scores


class GCNRelationModel(_Scored):
    """The BRP-NAS binary relation predictor: GCN trunk + linear head on the pair, trained on all pairs.

    Each :meth:`fit` starts from fresh weights (seeded by :meth:`reset`'s seed and the fit number; or
    the given trunk weights for transfer from a latency predictor) and runs ``steps`` full-batch Adam
    steps over every ordered pair of the trained models (all pairs fit in one batch: ≤ 100 graphs
    embedded per step, ≤ 9,900 pair logits). The network and its compiled training loop are built once
    and reused across fits and runs; only the variables' values change.

    Differences from the paper's predictor (4 x 600, dropout 0.2, mini-batches of 64 pairs for 250
    epochs), chosen for cost — BRP-NAS fits it 5 times per run and the benchmarks do hundreds of runs on
    2 CPU cores: width 64 (4 x 128 and 4 x 256 ranked no better in our checks with 100 training
    models), no dropout (keeps fits reproducible), full-batch AdamW with cosine decay.
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 4,
        steps: int = 500,
        learning_rate: float = 2e-3,
        weight_decay: float = 5e-4,
        target: str = "hard",
        cosine: bool = True,
        temperature: float | None = None,
        trunk_weights: list[np.ndarray] | None = None,
        jit_compile: bool = True,
        ensemble: int = 1,
        space: Space | None = None,
    ) -> None:
        import tensorflow as tf

        from predictors.gcn import GCNConfig, build_trunk
        from search._tf import Adam

        _check_target(target)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {ensemble}")
        self.space = space or nb201_space()
        self.config = GCNConfig(layers=layers, hidden=hidden, dropout=0.0)  # no dropout: fits stay reproducible
        self.steps, self.learning_rate, self.target, self.cosine = steps, learning_rate, target, cosine
        self.temperature, self.ensemble = temperature, ensemble
        # One member per trunk; all are trained together in one compiled loop (the mean of their losses),
        # which on CPU costs much less than ``ensemble`` separate fits: the step overhead is shared.
        names = ["relation_trunk", *(f"relation_trunk_{k}" for k in range(1, ensemble))]
        self.trunks = [build_trunk(self.config, name=name) for name in names]
        self.heads = [tf.Variable(tf.zeros((2 * hidden,)), name=f"relation_head_{k}") for k in range(ensemble)]
        self.biases = [tf.Variable(0.0, name=f"relation_bias_{k}") for k in range(ensemble)]
        self.trunk, self.head, self.bias = self.trunks[0], self.heads[0], self.biases[0]
        self.variables = [v for t in self.trunks for v in t.trainable_variables] + [*self.heads, *self.biases]
        self.optimizer = Adam(self.variables, learning_rate, weight_decay=weight_decay)
        self.trunk_weights: list[np.ndarray] | None = None
        if trunk_weights is not None:
            self.set_transfer(trunk_weights)
        enc = self.space.encodings
        first, inverse = self.space.unique_encodings()
        self._unique_adjacency = tf.constant(enc.adjacency[first])
        self._unique_features = tf.constant(enc.features[first])
        self._inverse = inverse
        self._train = tf.function(self._train_loop, jit_compile=jit_compile, reduce_retracing=True)
        self._embed = tf.function(self._score, jit_compile=jit_compile)
        self.fits: list[int] = []
        self.losses: list[float] = []
        self.reset(None)

    def set_transfer(self, trunk_weights: list[np.ndarray]) -> None:
        """Start every fit from these trunk weights (e.g. a trained latency predictor's trunk)."""
        shapes = [tuple(v.shape) for v in self.trunk.weights]
        given = [tuple(np.shape(w)) for w in trunk_weights]
        if shapes != given:
            raise ValueError(f"transfer weights do not fit this trunk ({self.config}): {given} vs {shapes}")
        self.trunk_weights = [np.asarray(w, dtype=np.float32) for w in trunk_weights]

    def reset(self, seed: int | None) -> None:
        self._seed = np.random.SeedSequence(seed)
        self._scores = None
        self.fits, self.losses = [], []

    def _initialise(self, rng: np.random.Generator) -> None:
        from search._tf import glorot_uniform

        hidden = self.config.hidden
        for trunk, head, bias in zip(self.trunks, self.heads, self.biases, strict=True):
            if self.trunk_weights is not None:
                trunk.set_weights(self.trunk_weights)
            else:
                for var in trunk.weights:
                    name = var.path.rsplit("/", 1)[-1]
                    if name == "kernel":
                        value = glorot_uniform(var.shape, rng)
                    elif name == "gamma":
                        value = np.ones(var.shape, np.float32)
                    else:
                        value = np.zeros(var.shape, np.float32)
                    var.assign(value)
            head.assign(glorot_uniform((2 * hidden, 1), rng)[:, 0])
            bias.assign(0.0)
        self.optimizer.reset(self.learning_rate)

    def _score(self, a: Any, f: Any) -> Any:
        """Mean over members of ``u·e_a``: ranks by the ensemble's mean logit against any opponent."""
        import tensorflow as tf

        hidden = self.config.hidden
        members = [
            tf.linalg.matvec(t([a, f], training=False), h[:hidden])
            for t, h in zip(self.trunks, self.heads, strict=True)
        ]
        return members[0] if len(members) == 1 else tf.add_n(members) / float(len(members))

    def _train_loop(self, a: Any, f: Any, t: Any, w: Any, steps: Any) -> Any:
        import tensorflow as tf

        hidden = self.config.hidden
        loss = tf.constant(0.0)
        total = tf.cast(steps, tf.float32)
        for step in tf.range(steps):
            if self.cosine:  # cosine decay to zero over the fit
                progress = tf.cast(step, tf.float32) / total
                self.optimizer.lr.assign(self.learning_rate * 0.5 * (1.0 + tf.cos(np.pi * progress)))
            with tf.GradientTape() as tape:
                member_losses = []
                for trunk, head, bias in zip(self.trunks, self.heads, self.biases, strict=True):
                    e = trunk([a, f], training=True)
                    sa = tf.linalg.matvec(e, head[:hidden])
                    sb = tf.linalg.matvec(e, head[hidden:])
                    logits = sa[:, None] + sb[None, :] + bias
                    pair_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=logits)
                    member_losses.append(tf.reduce_sum(w * pair_loss) / tf.reduce_sum(w))
                n = len(member_losses)
                loss = member_losses[0] if n == 1 else tf.add_n(member_losses) / float(n)
            self.optimizer.apply(tape.gradient(loss, self.variables))
        return loss

    def fit(self, indices: np.ndarray, accuracies: np.ndarray) -> None:
        import tensorflow as tf

        idx, acc = _check_fit_args(indices, accuracies, self.space)
        n = idx.shape[0]
        size = -(-n // 32) * 32  # pad to a multiple of 32: few compiled shapes, little waste
        rng = np.random.default_rng(self._seed.spawn(1)[0])
        self._initialise(rng)
        enc = self.space.encodings
        a = np.zeros((size, *enc.adjacency.shape[1:]), np.float32)
        f = np.zeros((size, *enc.features.shape[1:]), np.float32)
        a[:n], f[:n] = enc.adjacency[idx], enc.features[idx]
        t = np.full((size, size), 0.5, np.float32)
        t[:n, :n] = pair_targets(acc, self.target, self.temperature)
        w = np.zeros((size, size), np.float32)
        w[:n, :n] = 1.0 - np.eye(n, dtype=np.float32)
        loss = self._train(*(tf.constant(x) for x in (a, f, t, w)), tf.constant(self.steps))
        self.fits.append(n)
        self.losses.append(float(loss))
        unique_scores = np.asarray(self._embed(self._unique_adjacency, self._unique_features), dtype=np.float64)
        self._scores = unique_scores[self._inverse]


def binary_predictor_adapter(predictor: Any, space: Space | None = None) -> RelationModel:
    """Wrap a ``predictors.binary.BinaryRelationPredictor`` (or any look-alike) into this protocol.

    Used of the wrapped object: ``fit(adjacency, features, accuracies)`` on single graphs (it forms the
    pairs) and ``scores(adjacency, features) -> (B,)`` (higher = predicted better). ``reset(seed)`` is
    called when it has one; otherwise a dataclass ``train`` config with a ``seed`` field is re-seeded.
    """
    return _BinaryAdapter(predictor, space or nb201_space())


class _BinaryAdapter(_Scored):
    def __init__(self, predictor: Any, space: Space) -> None:
        for method in ("fit", "scores"):
            if not callable(getattr(predictor, method, None)):
                raise TypeError(f"a binary predictor needs a {method}() method; got {type(predictor).__name__}")
        self.predictor = predictor
        self.space = space

    def reset(self, seed: int | None) -> None:
        from dataclasses import is_dataclass, replace

        self._scores = None
        if callable(getattr(self.predictor, "reset", None)):
            self.predictor.reset(seed)
            return
        train = getattr(self.predictor, "train", None)
        if seed is not None and is_dataclass(train) and not isinstance(train, type) and hasattr(train, "seed"):
            self.predictor.train = replace(train, seed=int(seed) % 2**31)

    def fit(self, indices: np.ndarray, accuracies: np.ndarray) -> None:
        idx, acc = _check_fit_args(indices, accuracies, self.space)
        enc = self.space.encodings
        self.predictor.fit(enc.adjacency[idx], enc.features[idx], acc)
        scores = np.full(self.space.size, -np.inf)
        valid = self.space.valid_indices
        scores[valid] = np.asarray(self.predictor.scores(enc.adjacency[valid], enc.features[valid]), dtype=np.float64)
        self._scores = scores
