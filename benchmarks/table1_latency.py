"""Table 1 / S2 of the paper: latency prediction on LatBench — GCN vs FLOPs vs layer-wise, per device.

For each device, training size n (900: 900 train / 100 validation / the rest test; 100: 100 train /
11 validation / the rest test — the same 9:1 train:validation ratio) and split seed, one *unit* trains
the GCN latency predictor (``predictors.latency``, paper Table S1 recipe) and the two baselines on the
same split and scores them on the test models: shares within ±1/5/10%, RMSE, Spearman ρ, Kendall τ.

Noise-floor ceiling: LatBench timed every cell separately, also cells whose pruned graphs are
identical (the same network), and those timings differ. A predictor sees only the graph, so it gives
one value per group. The ceiling reported per device is the share of models within ±1/5/10% of the
median of their identical-graph group (groups by ``CellGraph.canonical_key``, all measured models).

GCN variants: ``paper`` (the paper's recipe, MSE loss), ``robust`` (Huber loss) and ``prior`` (Huber
loss, GCN on top of the layer-wise baseline); see ``VARIANTS``. Multi-device variants (not in the paper,
``MULTI_VARIANTS``): the GCN trunk is first pretrained on the *other* 12 LatBench devices' latencies of
all NB201 models (``predictors.multidevice``: one output per device, identical-graph group medians),
then its head is fitted on the target's training models (``multi_probe``: ridge read-out of the frozen
trunk) and, for ``multi``, the whole network is fine-tuned. No latency of the target device enters
pretraining, so one pretrained trunk per target device serves all its splits; it is cached in
``benchmarks/.cache/table1_pretrained/<device>/`` (ignored by git: 4 MB each) and rebuilt when missing.

Resumable: each unit writes ``benchmarks/results/table1/<device>_<n>_<seed>_<variant>.json`` when it finishes
and is skipped when that file exists. ``--summary`` aggregates whatever units exist into
``benchmarks/results/table1.json`` and ``table1.md`` (mean ± std over seeds).

Run (from the repo root; one process, the machine is shared)::

    nice -n 10 python benchmarks/table1_latency.py --devices paper --sizes 900,100 --seeds 0,1,2
    python benchmarks/table1_latency.py --summary
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from latbench.data import PAPER_DEVICES, load_latency
from latbench.graph import encode_all_nb201, group_medians, nb201_cell
from latbench.nb201 import all_archs
from predictors import metrics
from predictors.baselines import FlopsPredictor, LayerwisePredictor
from predictors.gcn import GCNConfig
from predictors.latency import LatencyPredictor
from predictors.multidevice import MultiDeviceGCN, PretrainConfig, fine_tune, group_targets
from predictors.regressor import TrainConfig

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
UNITS = RESULTS / "table1"
PRETRAINED = ROOT / ".cache" / "table1_pretrained"
TOLERANCES = (0.01, 0.05, 0.10)
# The target with 900 training models on the paper's six devices: at most this many points below
# the ceiling at ±5% and ±10% (mean over splits).
TARGET_GAPS = {"5pct": 3.0, "10pct": 1.0}
METHODS = ("gcn", "layerwise", "flops")
# GCN variants, as (training recipe, prior): the paper's recipe (MSE on the standardised log latency);
# "robust", which only swaps the loss for a Huber loss (quadratic within 0.2 standard deviations of log
# latency, ~10%, linear beyond: LatBench has a few badly-off timings that dominate an MSE loss); and
# "prior", the robust GCN learning the factor on top of the layer-wise baseline fitted on the same split.
_ROBUST = TrainConfig(target="log", loss="huber", huber_delta=0.2)
VARIANTS: dict[str, tuple[TrainConfig, str | None]] = {
    "paper": (TrainConfig(target="log", loss="mse"), None),
    "robust": (_ROBUST, None),
    "prior": (_ROBUST, "layerwise"),
}
# Tried on `prior` and not adopted (Jetson Nano fp32, n=900, ±5% share of all test models; the unchanged
# recipe in brackets, trained in the same run): dropout 0.1 / 0.2 / 0.3 / 0.5 on split 0: 86.0 / 85.9 /
# 85.7 / 86.5 (85.5), but dropout 0.5 on splits 1 and 2: 85.0 / 85.5 (85.7 / 86.5); on split 0 weight decay
# 5e-3 85.4, 256 hidden 85.8, Huber delta 0.1 85.7, 6 graph layers 76.5. The trunk pretrained on the
# other 12 devices (as `multi`) under the layer-wise prior: splits 0 / 1 85.8 / 85.6 (the committed
# `prior` units: 85.7 / 85.8). Training seeds matter more on some devices: three seeds of `prior` on the
# EdgeTPU split 1 gave 72.5 / 67.5 / 71.8, their ensemble (mean log prediction) 72.0; hence `prior_ens3`
# below (10 splits on the four paper devices short of the target: +0.2 to +1.3 points at ±5% over `prior`).
# Also tried on split 0 with ad-hoc scripts, not adopted (±5% share; `prior` retrained in the same run in
# brackets): one log-scale factor on the predictions, fitted on the training + validation models to maximise
# the ±5% share: Jetson Nano fp32 85.5 (86.1), EdgeTPU 72.7 (72.7), Hexagon 690 84.4 (84.1), Adreno 612 89.4
# (89.5); the best factor in hindsight gains at most 0.6. Each test model's prediction shrunk towards the mean log
# timing of its identical-graph twins among the labelled models (weights k : m for k twins, m = 1-16): Jetson Nano
# fp32 85.9-86.2 (86.1), EdgeTPU 70.8-72.8 (72.7); the GCN already fits the few labelled twins a graph has.
# Kernel ridge (RBF) on the structural path descriptors
# (`predictors.structural`) and the flat encoding over the layer-wise prior: Jetson Nano fp32 78-85 over a grid;
# its geometric blend with `prior` (weight 0.25) 86.5 (86.1), no more than `prior_ens3` gains. A mode-seeking
# Welsch loss (scale 0.1 standard deviations) from a fresh start, Jetson Nano fp32 and EdgeTPU: early stopping
# after 36 epochs at a useless fit (0% within ±10%); not pursued, as a perfect predictor gains from a mode
# rather than the median only on the EdgeTPU (`matched_ceilings`), and not up to its target there.
# Per-node FLOPs features (the suggestion) are not a variant: in NB201 a node's FLOPs depend only on its
# operation (every cell of a network is the same, stage by stage), so that column is a fixed linear combination of
# the one-hot operation columns, which the first graph convolution's weights (H W) already span.
# Ensembles, as (base variant, members): member k trains the base recipe with training seed k (member 0 is
# the base variant's own run on the split); the prediction is the geometric mean of the members'.
ENSEMBLE_VARIANTS: dict[str, tuple[str, int]] = {"prior_ens3": ("prior", 3)}
# Denoised-label variants, as base variant (the "denoised labels from identical-graph groups"):
# each training and validation model's latency is replaced by the median timing of its identical-graph
# twins among the labelled (training + validation) models, its own timing included; test latencies stay
# as measured. ``distinct`` variants then keep one training row per distinct graph, so that networks many
# NB201 cells share (the identity cell: 467) weigh no more in the loss than those only one cell has.
# Everything else is the base variant's. As (base variant, one row per distinct graph). Neither was
# adopted: ±5% share on splits 0 / 1 / 2 (`prior` on the same splits in brackets), `prior_denoised`:
# Jetson Nano fp32 85.7 / 85.0 / 86.9 (85.7 / 85.8 / 86.7), EdgeTPU 69.4 / 71.3 / 69.5 (72.4 / 68.3 / 73.5),
# Hexagon 690 82.0 / 80.4 / 83.1 (83.7 / 83.4 / 83.0), Adreno 612 88.9 / 89.3 / 86.5 (89.4 / 89.7 / 89.6);
# `prior_distinct` on split 0: Jetson Nano fp32 85.7, Hexagon 690 83.7 (the same as `prior`). The GCN
# already fits the twins' median on networks timed many times (`table1_noise.md`), so cleaner labels
# have little left to clean there.
DENOISED_VARIANTS: dict[str, tuple[str, bool]] = {
    "prior_denoised": ("prior", False),
    "prior_distinct": ("prior", True),
}
# Multi-device variants: fine-tuning recipe after the pretrained trunk and the ridge head (None: head only).
# The robust recipe (Table S1 schedule, Huber loss). A gentler one (AdamW 2e-4, 60 epochs, early stopping
# 10) stopped after 54 epochs at ±5/10% 75.5/93.1 (GTX 1080 Ti, n=900, split 0; robust: 84.6/96.7).
PRETRAIN = PretrainConfig(epochs=20)
MULTI_VARIANTS: dict[str, TrainConfig | None] = {
    "multi_probe": None,
    "multi": _ROBUST,
}
# Reference variant (not a GCN; not in the paper): the few-shot predictor's ridge map
# (``predictors.fewshot``) fitted on the n training models — the other 12 devices' shipped GCN
# predictions, their measured LatBench latencies (identical-graph medians) and four op counts. The
# target's own shipped GCN (trained on its LatBench data) is left out. It is what a lab that holds
# LatBench gets for a new device; it never sees a latency of the target outside the training models.
# (A robust GCN learning the factor over this map's prediction, as ``prior`` does over the layer-wise
# baseline, was worse than ``prior`` on the Jetson Nano fp32, n=900, split 0: ±5/10% 80.8/96.7.)
REFERENCE_VARIANTS = ("reference",)
ALL_VARIANTS = (*VARIANTS, *ENSEMBLE_VARIANTS, *DENOISED_VARIANTS, *MULTI_VARIANTS, *REFERENCE_VARIANTS)

# The paper's Table 1 values are not available in this workspace (the paper text could not be
# reached from here); fill them in as {device: {n: {"gcn": {"within_10pct": ..}, ..}}} to show them.
PAPER_TABLE1: dict[str, dict[int, dict[str, dict[str, float]]]] = {}


def split(valid_idx: np.ndarray, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / validation (n/9) / test (the rest) split of the measured models."""
    n_val = max(1, round(n_train / 9))
    if n_train + n_val >= valid_idx.size:
        raise ValueError(f"{n_train} + {n_val} models leave none to test (of {valid_idx.size})")
    order = np.random.default_rng(seed).permutation(valid_idx)
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


@cache
def canonical_keys() -> np.ndarray:
    return np.array([nb201_cell(a).canonical_key for a in all_archs()])


def ceiling(y: np.ndarray) -> dict[str, Any]:
    """Share of measured models within ±x% of their identical-graph group's median latency."""
    idx = np.flatnonzero(np.isfinite(y))
    keys = canonical_keys()[idx]
    _, group, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    ref = group_medians(y[idx], group, sizes.size)[group]
    out: dict[str, Any] = metrics.within_shares(ref, y[idx], TOLERANCES)
    out.update(
        models=int(idx.size),
        groups=int(sizes.size),
        models_in_groups_of_2_or_more=int(np.sum(sizes[group] > 1)),
    )
    return out


def denoised_labels(y: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """``y`` with each ``labelled`` model's latency replaced by the median over its identical-graph twins
    among ``labelled`` (its own timing included); other entries unchanged."""
    _, group, sizes = np.unique(canonical_keys()[labelled], return_inverse=True, return_counts=True)
    out = np.array(y, dtype=np.float64, copy=True)
    out[labelled] = group_medians(y[labelled], group, sizes.size)[group]
    return out


def distinct_rows(idx: np.ndarray) -> np.ndarray:
    """The first of ``idx`` for each distinct pruned graph among them, in ``idx``'s order."""
    _, first = np.unique(canonical_keys()[idx], return_index=True)
    return idx[np.sort(first)]


def twins_statistic(
    y: np.ndarray, models: np.ndarray, statistic: Callable[[np.ndarray], float]
) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``models``: ``statistic`` of its identical-graph twins' timings, its own left out (NaN
    without a measured twin), and its number of measured twins."""
    keys = canonical_keys()
    members: dict[str, list[int]] = {}
    for i in np.flatnonzero(np.isfinite(y)):
        members.setdefault(keys[i], []).append(int(i))
    value = np.full(models.size, np.nan)
    count = np.zeros(models.size, dtype=int)
    for k, m in enumerate(models):
        others = [j for j in members.get(keys[m], []) if j != m]
        count[k] = len(others)
        if others:
            value[k] = float(statistic(y[others]))
    return value, count


def twins_medians(y: np.ndarray, models: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``models``: the median of its twins' timings, its own left out, and its number of twins."""
    return twins_statistic(y, models, np.median)


# Twins a model needs for the second held-out ceiling: with 4 or more, their median is close to the
# network's own latency, so that ceiling is what a perfect graph-level predictor scores.
ORACLE_MIN_TWINS = 4


def heldout_ceiling(y: np.ndarray, min_twins: int = 1) -> dict[str, Any]:
    """Share of models within ±x% of the median of their *other* identical-graph twins' latencies.

    The ceiling above compares each model with a median that includes its own timing, and counts every
    model without a twin (27.5% of NB201's measured models) as a hit. Here a model is predicted from its
    twins alone, as a perfect graph-level predictor that learnt the twins' timings would predict it:
    only models with ``min_twins`` or more measured twins count. With one twin the twins' median is itself
    noisy, so this reads a little low at ``min_twins=1``; the first ceiling reads high.
    """
    idx = np.flatnonzero(np.isfinite(y))
    med, count = twins_medians(y, idx)
    has_twin = count >= min_twins
    out: dict[str, Any] = metrics.within_shares(med[has_twin], y[idx][has_twin], TOLERANCES)
    out["models"] = int(has_twin.sum())
    return out


# The latency-matched estimate of a perfect predictor's share over *all* measured models. Relative timing
# noise depends on the network's latency (on the Jetson Nano fp32 the slowest networks scatter most), and the
# well-twinned networks are mostly fast ones while the networks without a twin are mostly slow, so the
# held-out ceiling of the twinned models says little about the others. Noise is estimated per latency bin from
# the models with MATCHED_MIN_TWINS[k]+ twins and carried over to every model of that bin; the estimate at two
# twin thresholds shows how much it depends on which twins estimate the noise. (With 2+ twins one twin's timing
# is as noisy as the model's and the estimate reads low; with 16+ the slow bins, where most models without a
# twin lie, have almost no estimating models on some devices.)
MATCHED_MIN_TWINS = (4, 8)
MATCHED_BINS = 10
# A bin estimated from fewer models than this borrows the rate of the nearest populated bin below it.
MATCHED_MIN_MODELS = 30


def window_point(timings: np.ndarray, tol: float) -> float:
    """The value that puts the most of ``timings`` within ±tol of it (|value / t - 1| <= tol): the best a
    single prediction can do on the ±tol share when timings are skewed. Among equally good windows, the one
    nearest the median."""
    t = np.sort(np.asarray(timings, dtype=np.float64))
    # A window [lo, lo * (1 + tol) / (1 - tol)] holds every timing within ±tol of lo * (1 + tol).
    inside = np.searchsorted(t, t * (1.0 + tol) / (1.0 - tol) * (1.0 + 1e-12), side="right") - np.arange(t.size)
    best = np.flatnonzero(inside == inside.max())
    points = t[best] * (1.0 + tol)
    return float(points[np.argmin(np.abs(np.log(points / np.median(t))))])


def rate_sources(models: np.ndarray, min_models: int) -> list[int]:
    """For each bin, the bin whose rate it uses: itself with ``min_models`` estimating models or more, else the
    nearest such bin, below first."""
    bins = len(models)

    def nearest(b: int) -> int:
        return next(j for j in (*range(b - 1, -1, -1), *range(b + 1, bins)) if models[j] >= min_models)

    return [b if models[b] >= min_models else nearest(b) for b in range(bins)]


def matched_ceilings(
    y: np.ndarray,
    min_twins: tuple[int, ...] = MATCHED_MIN_TWINS,
    bins: int = MATCHED_BINS,
    min_models: int = MATCHED_MIN_MODELS,
) -> list[dict[str, Any]]:
    """Estimated share of all measured models a perfect graph-level predictor puts within ±x% of their
    timing, once per twin threshold in ``min_twins``.

    Bins are quantiles of all measured log latencies. A model with enough measured twins is predicted from
    its twins' timings alone (its own left out), in two ways: their median, and the value that puts the most
    of them within ±x% (``window_point``; better where timings are skewed, as on the EdgeTPU). It is binned
    by its twins' median (the network's latency), so that an outlying timing does not land in an extreme bin.
    Each bin's hit rate is given to every measured model in the bin by its own timing (the only latency a
    model without a twin has) and averaged over all measured models; the estimate is the higher of the two
    ways'.
    """
    idx = np.flatnonzero(np.isfinite(y))
    own = np.log(y[idx])
    med, count = twins_medians(y, idx)
    edges = np.quantile(own, np.linspace(0.0, 1.0, bins + 1))[1:-1]
    all_bin = np.searchsorted(edges, own, side="right")
    # Predictions from the twins, computed once for the lowest threshold's models.
    pool = count >= min(min_twins)
    timing = y[idx][pool]
    points = {"median": {tol: med[pool] for tol in TOLERANCES}}
    points["window"] = {tol: twins_statistic(y, idx[pool], partial(window_point, tol=tol))[0] for tol in TOLERANCES}
    out = []
    for threshold in min_twins:
        est = count[pool] >= threshold
        est_bin = np.searchsorted(edges, np.log(med[pool][est]), side="right")
        models = np.bincount(est_bin, minlength=bins)
        if models.max(initial=0) < min_models:
            raise ValueError(f"no latency bin has {min_models} models with {threshold}+ twins to estimate noise from")
        source = rate_sources(models, min_models)
        entry: dict[str, Any] = {"min_twins": threshold, "bins": bins, "estimating_models": int(est.sum())}
        for tol in TOLERANCES:
            key = f"within_{round(tol * 100)}pct"
            by_point = {}
            for point, preds in points.items():
                hit = np.abs(preds[tol][est] / timing[est] - 1.0) <= tol + 1e-12  # metrics.within's convention
                rate = (np.bincount(est_bin, weights=hit, minlength=bins) / np.maximum(models, 1))[source]
                by_point[point] = float(100.0 * rate[all_bin].mean())
            entry[key] = max(by_point.values())
            entry[f"{key}_by_point"] = {k: round(v, 2) for k, v in by_point.items()}
        entry["bin_models"] = [int(m) for m in models]
        out.append(entry)
    return out


def score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    out = metrics.within_shares(pred, true, TOLERANCES)
    out.update(
        rmse=metrics.rmse(pred, true), spearman=metrics.spearman(pred, true), kendall=metrics.kendall_tau(pred, true)
    )
    return out


def run_unit(
    device: str, n_train: int, seed: int, variant: str, gcn_cfg: GCNConfig, epochs: int | None = None
) -> dict[str, Any]:
    import keras

    enc = encode_all_nb201()
    adj, feat = enc.adjacency, enc.features
    y = np.asarray(load_latency().column(device), dtype=np.float64)
    tr, va, te = split(np.flatnonzero(np.isfinite(y)), n_train, seed)
    multi = variant in MULTI_VARIANTS
    base, members = ENSEMBLE_VARIANTS.get(variant, (variant, 1))
    denoised = variant in DENOISED_VARIANTS
    base, distinct = DENOISED_VARIANTS.get(base, (base, False))
    # What the GCN is fitted to; the test models are always scored against their own timings.
    y_fit = denoised_labels(y, np.concatenate([tr, va])) if denoised else y
    fit = distinct_rows(tr) if distinct else tr
    if variant in REFERENCE_VARIANTS:
        train_cfg, prior = None, None
    else:
        train_cfg, prior = (MULTI_VARIANTS[variant], None) if multi else VARIANTS[base]
    if epochs is not None and train_cfg is not None:
        train_cfg = replace(train_cfg, epochs=epochs)
    result: dict[str, Any] = {
        "variant": variant,
        "device": device,
        "n_train": int(tr.size),
        "n_val": int(va.size),
        "n_test": int(te.size),
        "seed": seed,
        "gcn_config": gcn_cfg.to_dict(),
        "train_config": None if train_cfg is None else asdict(train_cfg),
        "prior": prior,
        "denoised_labels": denoised,
        "training_rows": int(fit.size),
    }
    keras.backend.clear_session()
    start = time.perf_counter()
    val = (adj[va], feat[va], y_fit[va])
    if variant in REFERENCE_VARIANTS:
        gcn, x_all = reference_predictor(device)
        t_fit = time.perf_counter()
        info = gcn.fit_features(x_all[fit], y_fit[fit])
        seconds = time.perf_counter() - t_fit
        result["reference"] = {"lambda": info["lambda"], "cv": info["cv"], "features": gcn.feature_names()}
    elif multi:
        pre, pre_info = pretrained(device, gcn_cfg)
        result["pretraining"] = pre_info
        t_fit = time.perf_counter()
        gcn = fine_tune(pre, adj[fit], feat[fit], y_fit[fit], val=val, train=train_cfg, head_only=train_cfg is None)
        seconds = time.perf_counter() - t_fit
    elif members > 1:
        assert train_cfg is not None
        pred, result["members"], seconds = ensemble_predictions(
            (adj[fit], feat[fit], y_fit[fit]), val, (adj[te], feat[te], y[te]), gcn_cfg, train_cfg, prior, members
        )
        result["gcn"] = {
            **score(pred, y[te]),
            "epochs": sum(m["epochs"] for m in result["members"]),
            "best_epoch": 0,
            "train_seconds": round(seconds, 2),
        }
    else:
        gcn = LatencyPredictor(gcn_cfg, train_cfg, prior=prior)
        seconds = gcn.fit(adj[fit], feat[fit], y_fit[fit], val=val).seconds
    if members == 1:
        report = getattr(gcn, "report", None)
        t0 = time.perf_counter()
        pred = gcn.predict_features(x_all[te]) if variant in REFERENCE_VARIANTS else gcn.predict(adj[te], feat[te])
        result["gcn"] = {
            **score(pred, y[te]),
            "epochs": report.epochs if report else 0,
            "best_epoch": report.best_epoch if report else 0,
            "train_seconds": round(seconds, 2),
            "predict_seconds": round(time.perf_counter() - t0, 3),
        }
    lw = LayerwisePredictor().fit(adj[tr], feat[tr], y[tr])
    result["layerwise"] = {
        **score(lw.predict(adj[te], feat[te]), y[te]),
        "op_costs_ms": lw.op_costs,
        "factor": lw.factor,
        "op_costs_source": "fitted by NNLS on the training set",
    }
    fl = FlopsPredictor().fit(adj[tr], feat[tr], y[tr])
    result["flops"] = {**score(fl.predict(adj[te], feat[te]), y[te]), "coef_ms_per_mac_and_ms": fl.coef}
    result["unit_seconds"] = round(time.perf_counter() - start, 2)
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: times vary
    return result


Data = tuple[np.ndarray, np.ndarray, np.ndarray]  # adjacency, features, latency (ms)


def ensemble_predictions(
    train: Data, val: Data, test: Data, gcn_cfg: GCNConfig, train_cfg: TrainConfig, prior: str | None, members: int
) -> tuple[np.ndarray, list[dict[str, Any]], float]:
    """Train ``members`` GCNs (training seeds ``train_cfg.seed`` + k) and return the geometric mean of their
    test predictions, each member's own test scores and epochs, and the total training seconds."""
    import keras

    logs, info, seconds = [], [], 0.0
    for k in range(members):
        keras.backend.clear_session()
        cfg = replace(train_cfg, seed=train_cfg.seed + k)
        gcn = LatencyPredictor(gcn_cfg, cfg, prior=prior)
        report = gcn.fit(*train, val=val)
        seconds += report.seconds
        pred = gcn.predict(test[0], test[1])
        logs.append(np.log(pred))
        info.append({"seed": cfg.seed, **score(pred, test[2]), "epochs": report.epochs})
    return np.exp(np.mean(logs, axis=0)), info, seconds


@cache
def reference_predictor(device: str) -> tuple[Any, np.ndarray]:
    """An unfitted few-shot predictor for ``device`` and its feature table over all NB201 cells."""
    from predictors.fewshot import FewShotPredictor, ReferenceTable, shipped_bases

    table = load_latency()
    enc = encode_all_nb201()
    others = [d.name for d in table.devices() if d.name != device]
    measured = {}
    for d in others:
        col = np.asarray(table.column(d), dtype=np.float64)
        idx = np.flatnonzero(np.isfinite(col) & enc.valid)
        measured[d] = (idx, col[idx])
    predictor = FewShotPredictor(shipped_bases(exclude=device), ReferenceTable.from_measurements(measured))
    x = np.full((enc.valid.size, len(predictor.feature_names())), np.nan)
    x[enc.valid] = predictor.features(enc.adjacency[enc.valid], enc.features[enc.valid])
    return predictor, x


def pretrained(device: str, gcn_cfg: GCNConfig) -> tuple[MultiDeviceGCN, dict[str, Any]]:
    """The GCN pretrained on every LatBench device but ``device`` (cached; built on first use)."""
    table = load_latency()
    others = [d.name for d in table.devices() if d.name != device]
    folder = PRETRAINED / device
    pre: MultiDeviceGCN | None = None
    if (folder / "config.json").is_file():
        pre = MultiDeviceGCN.load(folder)
        if pre.devices != others or pre.config != PRETRAIN or replace(pre.gcn, outputs=1) != gcn_cfg:
            pre = None  # built with another recipe: rebuild
    if pre is None:
        enc = encode_all_nb201()
        lat = np.stack([np.asarray(table.column(d), dtype=np.float64) for d in others], axis=1)
        adj, feat, medians = group_targets(enc.adjacency[enc.valid], enc.features[enc.valid], lat[enc.valid])
        pre = MultiDeviceGCN(others, gcn_cfg, PRETRAIN)
        pre.fit(adj, feat, medians)
        pre.save(folder)
        print(f"pretrained without {device}: {pre.report.seconds if pre.report else 0:.0f} s", flush=True)
    assert pre.report is not None
    info = {
        "devices": others,
        "config": asdict(pre.config),
        "graphs": "distinct NB201 graphs, labelled with their identical-graph group's median latency per device",
        "final_loss": pre.report.best_loss,
        "seconds": round(pre.report.seconds, 1),
        "cache": f"benchmarks/.cache/table1_pretrained/{device}",
    }
    return pre, info


def unit_path(device: str, n: int, seed: int, variant: str) -> Path:
    return UNITS / f"{device}_{n}_{seed}_{variant}.json"


def set_results(folder: Path) -> None:
    global RESULTS, UNITS
    RESULTS, UNITS = folder, folder / "table1"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)  # atomic: an interrupted run leaves no half-written unit


def mean_std(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "n": int(a.size)}


def summarise() -> dict[str, Any]:
    """Mean ± std over seeds per device, size and method (GCN per variant; baselines once per split)."""
    units = [json.loads(p.read_text()) for p in sorted(UNITS.glob("*.json"))]
    table = load_latency()
    variants: dict[str, Any] = {k: {**asdict(t), "prior": p} for k, (t, p) in VARIANTS.items()}
    for k, (base, members) in ENSEMBLE_VARIANTS.items():
        variants[k] = {**variants[base], "members": members, "combine": "geometric mean of the members' predictions"}
    for k, (base, distinct) in DENOISED_VARIANTS.items():
        variants[k] = {
            **variants[base],
            "labels": "identical-graph medians over the training + validation models",
            "training_rows": "one per distinct graph" if distinct else "one per training model",
        }
    for k, t in MULTI_VARIANTS.items():
        variants[k] = {"pretraining": asdict(PRETRAIN), "head": "ridge", "fine_tune": None if t is None else asdict(t)}
    variants["reference"] = {
        "method": "predictors.fewshot ridge map: other devices' GCNs + measured latencies + op counts"
    }
    out: dict[str, Any] = {"devices": {}, "units": len(units), "variants": variants, "targets": TARGET_GAPS}
    for info in table.devices():
        mine = [u for u in units if u["device"] == info.name]
        if not mine:
            continue
        measured = np.asarray(table.column(info.name), dtype=np.float64)
        entry: dict[str, Any] = {
            "in_paper": info.in_paper,
            "ceiling": ceiling(measured),
            "ceiling_heldout": heldout_ceiling(measured),
            "ceiling_heldout_4": heldout_ceiling(measured, min_twins=ORACLE_MIN_TWINS),
            "ceiling_matched": matched_ceilings(measured),
            "sizes": {},
        }
        for n in sorted({u["n_train"] for u in mine}, reverse=True):
            sized: dict[str, Any] = {}
            for variant in ALL_VARIANTS:
                group = [u for u in mine if u["n_train"] == n and u["variant"] == variant]
                if group:
                    sized[f"gcn_{variant}"] = _aggregate([u["gcn"] for u in group], [u["seed"] for u in group])
            sized["best"] = best_vs_ceiling(sized, entry["ceiling"], info.in_paper and n == 900)
            if sized["best"] is not None:
                best = sized[sized["best"]["method"]]
                sized["best"].update(
                    {
                        f"gap_heldout_{k}": entry["ceiling_heldout"][f"within_{k}"] - best[f"within_{k}"]["mean"]
                        for k in ("5pct", "10pct")
                    }
                )
                # Where the target applies: does it ask for more than a perfect predictor scores (every estimate)?
                sized["best"]["target_above_perfect"] = (
                    None
                    if sized["best"]["target_met"] is None
                    else target_above_perfect(entry["ceiling"], entry["ceiling_matched"])
                )
            per_split = {u["seed"]: u for u in mine if u["n_train"] == n}  # baselines depend on the split only
            for method in ("layerwise", "flops"):
                sized[method] = _aggregate([u[method] for u in per_split.values()], list(per_split))
            sized["paper"] = PAPER_TABLE1.get(info.name, {}).get(n)
            entry["sizes"][str(n)] = sized
        out["devices"][info.name] = entry
    return out


def target_above_perfect(ceil: dict[str, Any], perfect: list[dict[str, Any]]) -> bool:
    """Whether the target's share (the issue's ceiling less the allowed gap) lies above every estimate of a
    perfect predictor's share, at ±5% or at ±10%: then no predictor of the graph can be expected to meet it."""
    return any(ceil[f"within_{k}"] - gap > max(p[f"within_{k}"] for p in perfect) for k, gap in TARGET_GAPS.items())


def best_vs_ceiling(sized: dict[str, Any], ceil: dict[str, Any], has_target: bool) -> dict[str, Any] | None:
    """The GCN variant with the highest mean ±5% share, its gaps to the ceiling, and the target check."""
    gcns = {k: v for k, v in sized.items() if k.startswith("gcn_")}
    if not gcns:
        return None
    # Only variants run on the most splits compete: a mean over fewer splits is not comparable.
    most = max(len(v["seeds"]) for v in gcns.values())
    gcns = {k: v for k, v in gcns.items() if len(v["seeds"]) == most}
    method = max(gcns, key=lambda k: gcns[k]["within_5pct"]["mean"])
    r = gcns[method]
    gaps = {f"gap_{k}": ceil[f"within_{k}"] - r[f"within_{k}"]["mean"] for k in ("5pct", "10pct")}
    met = None
    if has_target:
        met = all(gaps[f"gap_{k}"] <= TARGET_GAPS[k] for k in TARGET_GAPS)
    return {"method": method, "seeds": len(r["seeds"]), **gaps, "target_met": met}


def _aggregate(results: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    keys = [k for k, v in results[0].items() if isinstance(v, int | float)]
    return {"seeds": sorted(seeds), **{k: mean_std([r[k] for r in results]) for k in keys}}


def render_md(summary: dict[str, Any]) -> str:
    def ms(d: dict[str, Any] | None, key: str) -> str:
        if not d or key not in d:
            return "–"
        return f"{d[key]['mean']:.1f} ± {d[key]['std']:.1f}"

    lines = [
        "# Table 1 / S2 — latency prediction on LatBench",
        "",
        "Shares (%) of test models whose predicted latency is within ±1/5/10% of the measured one, mean ± std",
        "over random splits (seeds). n = training models; validation n/9; test = all the other measured models.",
        "",
        "* GCN paper: the paper's recipe (Table S1: 4x600 GCN, AdamW 8e-4, wd 5e-4, batch 10, plateau halving,",
        "  250 epochs, early stopping 35), MSE on the standardised log latency.",
        "* GCN robust: the same with a Huber loss (delta 0.2 standard deviations of log latency).",
        "* GCN prior: GCN robust learning the factor between the latency and the layer-wise prediction.",
        "* GCN prior ens3: three GCN prior members (training seeds 0, 1, 2; member 0 is the GCN prior unit's",
        "  recipe and seed), geometric mean of their predictions.",
        "* GCN prior denoised: GCN prior fitted to denoised labels: each training and validation model's latency",
        "  replaced by the median timing of its identical-graph twins among the training + validation models",
        "  (the issue's suggestion). Test models are scored against their own timings, as everywhere.",
        "* GCN prior distinct: GCN prior denoised trained on one row per distinct graph among the training",
        "  models, so that graphs many cells share weigh no more than graphs one cell has.",
        "* GCN multi probe (not in the paper): the GCN trunk pretrained on the other 12 LatBench devices'",
        "  latencies of all NB201 models (one output per device; standardised log latency of each distinct graph,",
        "  the median of its identical-graph group; Huber loss; "
        f"{PRETRAIN.epochs} epochs, batch {PRETRAIN.batch_size}, AdamW {PRETRAIN.learning_rate:g}, cosine decay),",
        "  frozen; only the head is fitted on the target's n models (ridge, penalty picked on the validation set).",
        "  No target-device latency enters pretraining (one pretrained trunk per target device serves all its",
        "  splits), but the test models' graphs do, with the other devices' latencies: the realistic case of a",
        "  lab that has LatBench and searches NB201, not a prediction for graphs no device has timed.",
        "* GCN multi: GCN multi probe, then the whole network fine-tuned on the n models with the GCN robust",
        "  recipe.",
        "* GCN reference (not a GCN, not in the paper; row label kept for the table's shape): the few-shot",
        "  predictor's ridge map (`predictors/fewshot.py`) fitted on the n training models: the other 12",
        "  devices' shipped GCN log predictions, their measured LatBench log latencies (identical-graph",
        "  medians) and four op counts; the target's own shipped GCN is left out. The same setting as GCN multi",
        "  (a lab holding LatBench), without any network training.",
        "* Layer-wise: per-op costs fitted by non-negative least squares on the training set (LatBench has",
        "  end-to-end latencies only), times one fitted factor. FLOPs: linear fit of latency on FLOPs.",
        "* Ceiling: share of all measured models within ±x% of the median of their identical-graph group",
        "  (a predictor sees only the graph, so it cannot separate them). Reads high: the median includes the",
        "  model's own timing, and models without a twin (27.5%) count as hits.",
        "* Ceiling, held-out twins (not in the issue's definition): share of the models that have identical-graph",
        "  twins within ±x% of the median of the twins' timings, the model's own left out: what a perfect",
        "  graph-level predictor scores against one separate timing. Reads a little low (one twin in a pair).",
        f"* Ceiling, held-out, {ORACLE_MIN_TWINS}+ twins: the same over the models with {ORACLE_MIN_TWINS} or more "
        "measured twins, whose",
        "  median is close to the network's own latency: what a perfect predictor scores on them.",
        "* Ceiling, latency-matched, k+ twins: an estimate of what a perfect predictor scores on *all* measured",
        "  models. Relative timing noise depends on the network's latency, and the networks without a twin are",
        "  mostly slow ones, so the held-out ceilings of the twinned (mostly fast) networks do not carry over. Each",
        "  k+-twin model is predicted from its twins' timings alone, by their median and by the value that puts",
        "  the most of them within ±x% (better where timings are skewed: EdgeTPU timings pile up at a floor). Per",
        "  latency decile (models binned by their twins' median), each way's share within ±x% is given to every",
        "  measured model of the decile (binned by its own timing) and averaged; the better way counts. Deciles",
        f"  with fewer than {MATCHED_MIN_MODELS} such models borrow the nearest populated decile below. An estimate,",
        "  not a bound.",
        "",
        "Produced by `python benchmarks/table1_latency.py --summary`; units in `benchmarks/results/table1/`.",
        "The number of splits differs between rows (column `seeds`): rows with fewer than 10 are unfinished.",
        "",
        "| device | n | method | seeds | ±1% | ±5% | ±10% | Spearman ρ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for device, entry in summary["devices"].items():
        c = entry["ceiling"]
        name = f"**{device}**" if entry["in_paper"] else device
        for n, s in entry["sizes"].items():
            for method in (*(f"gcn_{v}" for v in ALL_VARIANTS), "layerwise", "flops"):
                r = s.get(method)
                if r is None:
                    continue
                rho = f"{r['spearman']['mean']:.4f}"
                lines.append(
                    f"| {name} | {n} | {method.replace('_', ' ')} | {len(r['seeds'])} | {ms(r, 'within_1pct')} "
                    f"| {ms(r, 'within_5pct')} | {ms(r, 'within_10pct')} | {rho} |"
                )
            paper = s.get("paper") or {}
            for method, values in paper.items():
                lines.append(
                    f"| {name} | {n} | paper: {method} | – | {values.get('within_1pct', '–')} "
                    f"| {values.get('within_5pct', '–')} | {values.get('within_10pct', '–')} | – |"
                )
            lines.append(
                f"| {name} | {n} | ceiling | – | {c['within_1pct']:.1f} | {c['within_5pct']:.1f} "
                f"| {c['within_10pct']:.1f} | – |"
            )
            heldout = [
                (entry.get("ceiling_heldout"), "held-out twins"),
                (entry.get("ceiling_heldout_4"), "held-out, 4+ twins"),
            ]
            matched = [(m, f"latency-matched, {m['min_twins']}+ twins") for m in entry.get("ceiling_matched", [])]
            for h, label in heldout + matched:
                if h:
                    lines.append(
                        f"| {name} | {n} | ceiling, {label} | – | {h['within_1pct']:.1f} | {h['within_5pct']:.1f} "
                        f"| {h['within_10pct']:.1f} | – |"
                    )
    lines += [
        "",
        "Bold: the paper's six devices. The paper's own Table 1 values were not available in this workspace",
        "(`PAPER_TABLE1` in the script is empty); per-unit GCN training time and epochs are in the unit files.",
        "",
        "## Best variant vs the noise ceiling",
        "",
        "Best = highest mean ±5% share among the variants run on the most splits. Target (n = 900, the paper's"
        " six devices): gap to the ceiling ≤ "
        f"{TARGET_GAPS['5pct']:g} points at ±5%",
        f"and ≤ {TARGET_GAPS['10pct']:g} at ±10%. Few seeds make a mean uncertain: compare with the std above.",
        "",
        "Gaps to the held-out-twin ceiling (negative: the predictor scores above it) are shown beside them;",
        "the target is read against the issue's ceiling. `table1_noise.md` splits the GCN's misses into its own",
        "error (against the median of each model's twins) and the timing noise (`benchmarks/table1_noise.py`).",
        "The last columns: what a perfect predictor scores on all measured models (the latency-matched ceilings,",
        f"estimated from the models with {' and '.join(f'{m}+' for m in MATCHED_MIN_TWINS)} twins: the range of the "
        "estimates), and whether the",
        "target's share (the issue's ceiling less the allowed gap) is above every estimate at ±5% or ±10%. Where it",
        "is, no predictor of the graph can be expected to meet the target: the timings scatter too much.",
        "",
        "| device | n | best variant | seeds | ±5% (ceiling) | gap ±5 | ±10% (ceiling) | gap ±10 | target met "
        "| held-out gap ±5 / ±10 | perfect predictor, all models (est.), ±5 / ±10 | target above it |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for device, entry in summary["devices"].items():
        c = entry["ceiling"]
        name = f"**{device}**" if entry["in_paper"] else device
        perfect = entry["ceiling_matched"]

        def span(key: str, perfect: list[dict[str, Any]] = perfect) -> str:
            lo, hi = min(p[key] for p in perfect), max(p[key] for p in perfect)
            return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}–{hi:.1f}"

        for n, s in entry["sizes"].items():
            b = s.get("best")
            if not b:
                continue
            r = s[b["method"]]
            verdict = {None: "–", True: "yes", False: "no"}
            met = verdict[b["target_met"]]
            lines.append(
                f"| {name} | {n} | {b['method'].removeprefix('gcn_').replace('_', ' ')} | {b['seeds']} "
                f"| {r['within_5pct']['mean']:.1f} ({c['within_5pct']:.1f}) | {b['gap_5pct']:.1f} "
                f"| {r['within_10pct']['mean']:.1f} ({c['within_10pct']:.1f}) | {b['gap_10pct']:.1f} | {met} "
                f"| {b.get('gap_heldout_5pct', float('nan')):.1f} / {b.get('gap_heldout_10pct', float('nan')):.1f} "
                f"| {span('within_5pct')} / {span('within_10pct')} "
                f"| {verdict[b.get('target_above_perfect')]} |"
            )
    return "\n".join(lines) + "\n"


def resolve_devices(spec: str) -> list[str]:
    """Device names from ``--devices``: 'paper' (the paper's six), 'all' (those first) or a comma list."""
    known = [d.name for d in load_latency().devices()]
    if spec == "paper":
        devices = list(PAPER_DEVICES)
    elif spec == "all":
        devices = list(PAPER_DEVICES) + [d for d in known if d not in PAPER_DEVICES]
    else:
        devices = [d.strip() for d in spec.split(",") if d.strip()]
    unknown = [d for d in devices if d not in known]
    if unknown or not devices:
        raise ValueError(f"unknown devices {unknown or spec!r}; known: {', '.join(known)}")
    return devices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="paper", help="'paper', 'all', or comma-separated device names")
    parser.add_argument("--sizes", default="900,100", help="training sizes, comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="split seeds, comma-separated")
    parser.add_argument("--variants", default="paper,robust,prior", help=f"GCN variants, of {', '.join(ALL_VARIANTS)}")
    parser.add_argument("--summary", action="store_true", help="aggregate existing units and write table1.json/md")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs (quick checks only)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results folder (default: benchmarks/results)")
    args = parser.parse_args(argv)
    set_results(args.results)

    if args.summary:
        summary = summarise()
        write_json(RESULTS / "table1.json", summary)
        (RESULTS / "table1.md").write_text(render_md(summary))
        print(render_md(summary))
        return 0

    try:
        devices = resolve_devices(args.devices)
    except ValueError as err:
        parser.error(str(err))
    variants = [v.strip() for v in args.variants.split(",")]
    if set(variants) - set(ALL_VARIANTS):
        parser.error(f"unknown variants {sorted(set(variants) - set(ALL_VARIANTS))}; known: {', '.join(ALL_VARIANTS)}")
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    gcn_cfg = GCNConfig()
    for n in sizes:  # one size at a time, one seed at a time, so every device gets a first result early
        for seed in seeds:
            for variant in variants:
                for device in devices:
                    path = unit_path(device, n, seed, variant)
                    if path.exists():
                        continue
                    result = run_unit(device, n, seed, variant, gcn_cfg, args.epochs)
                    write_json(path, result)
                    g = result["gcn"]
                    print(
                        f"{device} n={n} seed={seed} {variant}: GCN ±1/5/10 = {g['within_1pct']:.1f}/"
                        f"{g['within_5pct']:.1f}/{g['within_10pct']:.1f} (ρ {g['spearman']:.4f}, {g['epochs']} epochs,"
                        f" {g['train_seconds']:.0f} s); layer-wise ±10 {result['layerwise']['within_10pct']:.1f};"
                        f" FLOPs ±10 {result['flops']['within_10pct']:.1f}; unit {result['unit_seconds']:.0f} s",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
