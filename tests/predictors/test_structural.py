import numpy as np
import pytest

from latbench.data import BRP_SEED, load_accuracy
from latbench.graph import encode_all_nb201, encode_nb201_batch
from predictors import metrics
from predictors.accuracy import (
    AccuracyPredictor,
    DistillConfig,
    StructuralAccuracyPredictor,
    StructuralConfig,
    _pseudo_labelled,
)
from predictors.baselines import op_counts
from predictors.gcn import GCNConfig, unique_graphs
from predictors.regressor import TrainConfig
from predictors.structural import FEATURE_NAMES, structural_features


def _named(codes: list[list[int]]) -> list[dict[str, float]]:
    enc = encode_nb201_batch(np.array(codes))
    rows = structural_features(enc.adjacency, enc.features)
    return [dict(zip(FEATURE_NAMES, row, strict=True)) for row in rows]


def test_features_of_hand_checked_cells() -> None:
    # Edge order (0->1), (0->2), (1->2), (0->3), (1->3), (2->3); 1 skip, 3 conv3x3, 4 avgpool, 0 none.
    all_conv, all_skip, dead_conv, pool_bypass = _named([[3] * 6, [1] * 6, [3, 0, 0, 1, 0, 0], [3, 0, 3, 4, 0, 3]])
    assert all_conv["conv3x3"] == 6 and all_conv["paths"] == 4
    assert (all_conv["conv3x3_max"], all_conv["conv3x3_min"], all_conv["paths_without_conv"]) == (3, 1, 0)
    assert all_skip["paths"] == 1 and all_skip["has_empty_path"] == 1 and all_skip["paths_without_conv"] == 1
    # The conv on 0->1 leads nowhere, so pruning removes it: one empty path (the skip 0->3) is left.
    assert dead_conv["conv3x3"] == 0 and dead_conv["paths"] == 1 and dead_conv["has_empty_path"] == 1
    # Chain 0->1->2->3 of three convs, plus a pooling-only bypass 0->3.
    assert pool_bypass["paths"] == 2 and pool_bypass["pool_only_paths"] == 1 and pool_bypass["conv_max"] == 3
    assert pool_bypass["conv_min"] == 0 and pool_bypass["share_paths_with_pool"] == 0.5


def test_features_are_rowwise_despite_dedupe() -> None:
    enc = encode_all_nb201()
    idx = np.r_[np.arange(0, 15625, 311), np.arange(0, 15625, 311)]  # duplicates on purpose
    batch = structural_features(enc.adjacency[idx], enc.features[idx])
    assert batch.shape == (idx.size, len(FEATURE_NAMES))
    one_by_one = np.concatenate([structural_features(enc.adjacency[i : i + 1], enc.features[i : i + 1]) for i in idx])
    np.testing.assert_array_equal(batch, one_by_one)
    np.testing.assert_array_equal(batch[:, :4], op_counts(enc.adjacency[idx], enc.features[idx])[:, :4])


@pytest.fixture(scope="module")
def split():
    enc = encode_all_nb201()
    acc = np.asarray(load_accuracy().column("cifar100", "valid", BRP_SEED), dtype=np.float64)
    pool = np.flatnonzero(enc.valid & np.isfinite(acc))
    order = np.random.default_rng(0).permutation(pool)
    tr, te = order[:100], order[100:2100]
    return enc.adjacency, enc.features, acc, tr, te


def test_structural_predictor_on_real_accuracies(split) -> None:
    adj, feat, acc, tr, te = split
    model = StructuralAccuracyPredictor().fit(adj[tr], feat[tr], acc[tr])
    assert len(model.members) == 4  # 2 transforms x 2 criteria
    pred = model.predict(adj[te], feat[te])
    share = metrics.within_shares(pred, acc[te], (0.05,))["within_5pct"]
    # A least-squares fit on the op counts alone, on the same 100 models, as the bar to clear.
    x = op_counts(adj, feat)
    coef = np.linalg.lstsq(x[tr], acc[tr], rcond=None)[0]
    base = metrics.within_shares(x[te] @ coef, acc[te], (0.05,))["within_5pct"]
    assert share >= 80.0 and share >= base + 15.0, (share, base)
    assert metrics.spearman(pred, acc[te]) > 0.85
    # Deterministic: no randomness anywhere in the fit.
    again = StructuralAccuracyPredictor().fit(adj[tr], feat[tr], acc[tr]).predict(adj[te], feat[te])
    np.testing.assert_array_equal(pred, again)


def test_structural_predictor_checks_inputs(split) -> None:
    adj, feat, acc, tr, _ = split
    with pytest.raises(ValueError, match="not fitted"):
        StructuralAccuracyPredictor().predict(adj[:2], feat[:2])
    with pytest.raises(ValueError, match="percent"):
        StructuralAccuracyPredictor().fit(adj[tr], feat[tr], acc[tr] / 100.0 - 0.5)
    with pytest.raises(ValueError, match="transforms"):
        StructuralConfig(transforms=("sqrt",))
    one = StructuralAccuracyPredictor(StructuralConfig(transforms=("logit",), criteria=("mse",)))
    assert len(one.fit(adj[tr], feat[tr], acc[tr]).members) == 1


def test_pseudo_labels_keep_labelled_accuracies_and_fill_the_pool_from_the_teacher(split) -> None:
    adj, feat, acc, tr, te = split
    teacher = StructuralAccuracyPredictor().fit(adj[tr], feat[tr], acc[tr])
    pool = np.concatenate([tr[:10], te[:400]])  # the pool overlaps the labelled models, as all of NB201 does
    adj_u, _, labels = _pseudo_labelled(adj[tr], feat[tr], acc[tr], (adj[pool], feat[pool]), teacher)
    both = np.concatenate([tr, pool])
    _, _, inverse = unique_graphs(adj[both], feat[both])
    assert labels.shape == (adj_u.shape[0],) == (inverse.max() + 1,)
    assert adj_u.shape[0] < both.size  # identical graphs among NB201 cells share one row
    # Each labelled graph carries the mean accuracy of its labelled cells, the others the teacher's value.
    labelled = np.zeros(adj_u.shape[0], bool)
    for g in np.unique(inverse[: tr.size]):
        np.testing.assert_allclose(labels[g], acc[tr][inverse[: tr.size] == g].mean())
        labelled[g] = True
    # (scored on the cells as encoded: the distinct graphs' canonical node order is not topological)
    taught = teacher.predict(adj[pool], feat[pool])
    for g in np.flatnonzero(~labelled)[:50]:
        np.testing.assert_allclose(labels[g], taught[inverse[tr.size :] == g].mean())
    with pytest.raises(ValueError, match="pool is empty"):
        _pseudo_labelled(adj[tr], feat[tr], acc[tr], (adj[:0], feat[:0]), teacher)


def test_fit_distilled_learns_from_the_teacher_and_restores_the_recipe(split) -> None:
    adj, feat, acc, tr, te = split
    recipe = TrainConfig(target="standard", loss="huber", huber_delta=0.5, epochs=8, batch_size=32, learning_rate=3e-3)
    tiny = GCNConfig(layers=2, hidden=32, dropout=0.0)
    pool = te[:1500]
    model = AccuracyPredictor(tiny, recipe)
    report = model.fit_distilled(adj[tr], feat[tr], acc[tr], pool=(adj[pool], feat[pool]), distill=DistillConfig(6))
    assert report.pretrain.epochs == 6 and report.finetune.epochs == 8
    assert model.train == recipe  # the pretraining epochs did not leak into the saved recipe
    assert report.pool_graphs < 100 + pool.size
    held_out = te[1500:]
    rho = metrics.spearman(model.predict(adj[held_out], feat[held_out]), acc[held_out])
    # The same tiny recipe on the 100 labelled models alone, as the bar the pseudo-labels must clear.
    plain = AccuracyPredictor(tiny, recipe)
    plain.fit(adj[tr], feat[tr], acc[tr])
    rho_plain = metrics.spearman(plain.predict(adj[held_out], feat[held_out]), acc[held_out])
    assert rho > rho_plain and rho > 0.8, (rho, rho_plain)
    with pytest.raises(ValueError, match="pretrain_epochs"):
        DistillConfig(pretrain_epochs=0)


def test_features_refuse_cells_out_of_topological_order() -> None:
    enc = encode_all_nb201()
    idx = np.flatnonzero(enc.valid)[:300]
    adj_u, feat_u, _ = unique_graphs(enc.adjacency[idx], enc.features[idx])
    # The distinct graphs' canonical node order is not the encoding's topological one: paths would be misread.
    with pytest.raises(ValueError, match="topological order"):
        structural_features(adj_u, feat_u)
