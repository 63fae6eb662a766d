"""Antisymmetry of the binary relation predictor (paper §4: 98% on 1,000 models) and its pairwise accuracy.

For each training size n (100, 900) and seed, one *unit* draws n random valid NB201 cells (CIFAR-100
validation accuracy, seed 888, as BRP-NAS) and a disjoint set of 1,000 random valid evaluation cells,
trains a binary relation predictor on the n models' accuracies, and on every unordered pair {i, j} of
the evaluation cells computes both P(i beats j) and P(j beats i):

* ``antisymmetry`` — share of pairs where exactly one of "i beats j" (P > 0.5) and "j beats i" holds
  (the argmax flips when the pair is swapped);
* ``pair_accuracy`` — share of pairs (with different true accuracies) where the predicted relation for
  the order (i, j) matches the truth; ``pair_accuracy_both`` — both orders right;
* ``kendall`` — Kendall τ between the predictor's ranking scores (expected wins) and the accuracies;
* ``mean_abs_sum_gap`` — mean |P(i beats j) + P(j beats i) − 1| (0 for a perfectly consistent model).

Models (``MODELS``): ``paper`` — ``predictors.binary.BinaryRelationPredictor`` (the paper's 4 x 600
GCN trunk shared by both inputs, dense head on the concatenation, KL loss to the softmax of the true
accuracies), trained for ``PAPER_EPOCHS`` epochs of ``PAPER_PAIRS`` random ordered pairs (batches of 64;
fewer pairs than the paper's 250 epochs, for the 2 shared CPU cores); ``search`` — the relation model the
search benchmarks use (``search.relation.GCNRelationModel``: 4 x 64 trunk, full-batch, all pairs).

Resumable: units in ``benchmarks/results/binary_antisymmetry/<model>_<n>_<seed>.json``; the summary goes
to ``benchmarks/results/binary_antisymmetry.{json,md}``.

Run (from the repo root)::

    nice -n 10 python benchmarks/binary_antisymmetry.py --sizes 100,900 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from _units import add_unit_args, run_units, save_summary

from latbench.graph import encode_all_nb201
from predictors import metrics
from predictors.accuracy import brp_accuracy as accuracy_target

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
NAME = "binary_antisymmetry"
MODELS = ("paper", "search")
N_EVAL = 1000
PAPER_EPOCHS, PAPER_PAIRS = 20, 1000
PAPER_ANTISYMMETRY = 98.0


def draw(valid_idx: np.ndarray, n: int, n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n training cells and n_eval disjoint evaluation cells (seeded)."""
    if n + n_eval > valid_idx.size:
        raise ValueError(f"{n} + {n_eval} cells exceed the {valid_idx.size} valid ones")
    order = np.random.default_rng(seed).permutation(valid_idx)
    return order[:n], order[n : n + n_eval]


def relation_stats(p: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Statistics of a win matrix ``p[i, j] = P(i beats j)`` (diagonal ignored) against true accuracies."""
    iu = np.triu_indices(p.shape[0], k=1)
    ij, ji = p[iu], p.T[iu]
    wins_ij, wins_ji = ij > 0.5, ji > 0.5
    truth = true[iu[0]] > true[iu[1]]
    differ = true[iu[0]] != true[iu[1]]
    return {
        "pairs": int(ij.size),
        "antisymmetry": 100.0 * float(np.mean(wins_ij != wins_ji)),
        "pair_accuracy": 100.0 * float(np.mean(wins_ij[differ] == truth[differ])),
        "pair_accuracy_both": 100.0 * float(np.mean((wins_ij == truth)[differ] & (wins_ji != truth)[differ])),
        "mean_abs_sum_gap": float(np.mean(np.abs(ij + ji - 1.0))),
    }


def _paper_matrix(
    a_tr: np.ndarray, f_tr: np.ndarray, y_tr: np.ndarray, a_ev: np.ndarray, f_ev: np.ndarray, seed: int, cfg: dict
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    from predictors.binary import BinaryRelationPredictor, BinaryTrainConfig
    from predictors.gcn import GCNConfig

    gcn = GCNConfig(**cfg.get("gcn", {}))
    train = BinaryTrainConfig(
        epochs=cfg.get("epochs", PAPER_EPOCHS), pairs_per_epoch=cfg.get("pairs", PAPER_PAIRS), seed=seed
    )
    model = BinaryRelationPredictor(gcn, train)
    report = model.fit(a_tr, f_tr, y_tr)
    info = {
        "epochs": report.epochs,
        "pairs_per_epoch": train.pairs_per_epoch,
        "final_loss": report.history["loss"][-1],
        "train_seconds": round(report.seconds, 1),
        "gcn": gcn.to_dict(),
    }
    return model.win_matrix(a_ev, f_ev), model.scores(a_ev, f_ev), info


def _search_matrix(
    tr: np.ndarray, y_tr: np.ndarray, ev: np.ndarray, seed: int, cfg: dict
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import tensorflow as tf

    from search.relation import GCNRelationModel

    model = GCNRelationModel(**cfg.get("search", {}))
    model.reset(seed)
    start = time.perf_counter()
    model.fit(tr, y_tr)
    seconds = time.perf_counter() - start
    # P(i beats j) = sigmoid(s_first[i] + s_second[j] + bias): both halves of the head (the model only
    # keeps the first for ranking).
    enc = model.space.encodings
    emb = np.asarray(model.trunk([tf.constant(enc.adjacency[ev]), tf.constant(enc.features[ev])], training=False))
    head, h = np.asarray(model.head), model.config.hidden
    first, second = emb @ head[:h], emb @ head[h:]
    p = 0.5 * (1.0 + np.tanh(0.5 * (first[:, None] + second[None, :] + float(model.bias.numpy()))))
    np.fill_diagonal(p, np.nan)
    scores = np.nansum(p, axis=1)
    info = {
        "steps": model.steps,
        "hidden": h,
        "target": model.target,
        "temperature": model.temperature,
        "final_loss": model.losses[-1],
        "train_seconds": round(seconds, 1),
    }
    return p, scores, info


def run_unit(model: str, n: int, seed: int, n_eval: int = N_EVAL, cfg: dict | None = None) -> dict[str, Any]:
    import keras

    cfg = cfg or {}
    keras.backend.clear_session()
    enc = encode_all_nb201()
    acc = accuracy_target()
    tr, ev = draw(np.flatnonzero(np.isfinite(acc)), n, n_eval, seed)
    start = time.perf_counter()
    if model == "paper":
        p, scores, info = _paper_matrix(
            enc.adjacency[tr], enc.features[tr], acc[tr], enc.adjacency[ev], enc.features[ev], seed, cfg
        )
    elif model == "search":
        p, scores, info = _search_matrix(tr, acc[tr], ev, seed, cfg)
    else:
        raise ValueError(f"unknown model {model!r}; known: {MODELS}")
    return {
        "model": model,
        "n_train": int(n),
        "n_eval": int(ev.size),
        "seed": seed,
        **relation_stats(p, acc[ev]),
        "kendall": metrics.kendall_tau(scores, acc[ev]),
        **info,
        "unit_seconds": round(time.perf_counter() - start, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


KEYS = ("antisymmetry", "pair_accuracy", "pair_accuracy_both", "kendall", "mean_abs_sum_gap")


def summarise(results: Path) -> dict[str, Any]:
    units = [json.loads(p.read_text()) for p in sorted((results / NAME).glob("*.json"))]
    out: dict[str, Any] = {"paper_antisymmetry": PAPER_ANTISYMMETRY, "units": len(units), "rows": []}
    for model in MODELS:
        for n in sorted({u["n_train"] for u in units if u["model"] == model}):
            group = [u for u in units if u["model"] == model and u["n_train"] == n]
            row: dict[str, Any] = {"model": model, "n_train": n, "seeds": sorted(u["seed"] for u in group)}
            for k in KEYS:
                a = np.array([u[k] for u in group], dtype=np.float64)
                row[k] = {
                    "mean": float(a.mean()),
                    "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
                    "min": float(a.min()),
                }
            row["train_seconds_median"] = float(np.median([u["train_seconds"] for u in group]))
            out["rows"].append(row)
    loads = [u["load_avg"][0] for u in units]
    out["load_avg_1min_median"] = float(np.median(loads)) if loads else None
    return out


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Binary relation predictor: antisymmetry and pairwise accuracy (NB201, CIFAR-100 valid, seed 888)",
        "",
        f"Trained on n random models, evaluated on all pairs of {N_EVAL:,} other random valid models. Paper: "
        f"{PAPER_ANTISYMMETRY:.0f}% antisymmetric. Mean ± std over seeds (min in brackets).",
        "",
        "| model | n | antisymmetric % | pair accuracy % | both orders right % | Kendall τ (scores) "
        "| mean abs(P(i>j)+P(j>i)−1) | seeds | train s (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:

        def f(k: str, d: int = 1, r: dict[str, Any] = r) -> str:
            return f"{r[k]['mean']:.{d}f} ± {r[k]['std']:.{d}f} ({r[k]['min']:.{d}f})"

        lines.append(
            f"| {r['model']} | {r['n_train']} | {f('antisymmetry')} | {f('pair_accuracy')} | "
            f"{f('pair_accuracy_both')} | {f('kendall', 3)} | {f('mean_abs_sum_gap', 3)} | {len(r['seeds'])} "
            f"| {r['train_seconds_median']:.0f} |"
        )
    lines += [
        "",
        f"`paper`: predictors.binary (4 x 600 trunk, KL loss), {PAPER_EPOCHS} epochs x {PAPER_PAIRS:,} random "
        "ordered pairs, batch 64. `search`: search.relation.GCNRelationModel (4 x 64, hard pair targets, 500 "
        "full-batch steps on all ordered pairs), the model of the search benchmarks.",
        f"Median 1-min load average during the units: {summary['load_avg_1min_median']} (2 shared cores).",
    ]
    return "\n".join(lines) + "\n"


def run(results: Path, models: list[str], sizes: list[int], seeds: list[int], **kwargs: Any) -> dict[str, Any]:
    units = (
        (results / NAME / f"{model}_{n}_{seed}.json", partial(run_unit, model, n, seed, **kwargs))
        for n in sizes
        for seed in seeds
        for model in models
    )
    run_units(
        units,
        lambda u: (
            f"{u['model']} n={u['n_train']} seed={u['seed']}: antisym {u['antisymmetry']:.1f} "
            f"acc {u['pair_accuracy']:.1f} ({u['unit_seconds']:.0f} s)"
        ),
    )
    return write_summary(results)


def write_summary(results: Path) -> dict[str, Any]:
    return save_summary(results, NAME, summarise(results), markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", default="100,900")
    add_unit_args(parser, RESULTS)
    args = parser.parse_args(argv)
    if args.summary:
        write_summary(args.results)
        return 0
    run(
        args.results,
        args.models.split(","),
        [int(s) for s in args.sizes.split(",")],
        [int(s) for s in args.seeds.split(",")],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
