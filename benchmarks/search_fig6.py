"""Fig. 6 (left and right), Fig. 2 and Fig. S3 of BRP-NAS, reproduced with the ``search`` package.

Parts:

* ``predictors`` — the desktop-GPU latency predictors the constrained searches and Fig. S3 use, all
  fitted on the same 900 random measured models (100 more for the GCN's validation, split seed 0):
  the GCN latency predictor (``predictors.latency``, paper Table S1 recipe), the layer-wise and the
  FLOPs baselines (``predictors.baselines``). Their predictions for every index are kept in
  ``units/latency_predictions.npz``.
* ``free`` — Fig. 6 left: NB201 CIFAR-100 without a latency limit; BRP-NAS with the GCN binary
  relation predictor and the paper's K=100, I=5, α=0.5 (``search.runner.SearchOptions``' defaults,
  what ``eagle search`` uses), aging evolution (population 64, sample 16), REINFORCE (LSTM), random
  search; every run trains ``--total`` models. Also ``brp_linear`` (not the paper's predictor):
  Algorithm 1 with a binary relation predictor linear in structural descriptors of the cell, ranked by
  an upper confidence bound and refitted after every trained model (``search.runner.LINEAR_BRP``,
  picked on tuning seeds in ``search_brp_sweep.py``, round 5).
* ``gpu5ms`` — Fig. 6 right / Fig. 2: 5 ms on the desktop GPU (GTX 1080 Ti, LatBench): BRP-NAS
  filtering with the GCN latency predictor (the paper's relation predictor, ``brp_gcn``, and the linear
  one, ``brp_gcn_linear``), AE filtering with the layer-wise predictor, AE filtering with the measured
  latency. A model counts only if its measured latency is under 5 ms.
* ``tuned`` (not in the default run) — BRP-NAS with the configuration ``search_brp_sweep.py`` picked
  on separate tuning seeds (``search.runner.TUNED_BRP``: K=40, I=4, α=0.5, soft pair targets at
  temperature 1) in both settings.
* ``refit`` (not in the default run) — ``brp_refit``: an improved BRP-NAS, not the paper's Algorithm 1:
  the configuration ``search_brp_sweep.py`` picked on tuning seeds among variants that retrain the
  relation predictor every few models of the final phase (``search.runner.REFIT_BRP``).
* ``kernel`` (not in the default run) — ``brp_kernel`` / ``brp_gcn_kernel``: Algorithm 1 with a kernel
  binary relation predictor on structural descriptors of the cell instead of the GCN, refitted after
  every trained model (``search.runner.KERNEL_BRP``, picked on tuning seeds in ``search_brp_sweep.py``).
* ``s3`` — Fig. S3: oracle NAS on the desktop GPU for limits 1-7 ms (0.1 ms steps) with the GCN,
  layer-wise and FLOPs predictors: false positives/negatives, missed and over-claimed accuracy.

Protocol: "training" reads the CIFAR-100 validation accuracy of a random seed (SGD noise) — the same
oracle and noise model for every arm; a search's pick is the found model with the best validation
accuracy seen. Budget accounting is the same for every arm: each distinct model trained costs one,
and every arm runs in cache mode, so no arm ever pays for (or re-draws the noise of) a model twice —
BRP-NAS never asks for a trained model again, and AE / REINFORCE get a re-visited model's cached
accuracy for free (it still joins AE's population and updates REINFORCE's controller). Two curves per run, value after t
trained models: ``max_test`` (the best test accuracy among the found models so far — what the paper
plots) and ``selected`` (the test accuracy of the pick so far — what a search would report). Test
accuracies are the official CIFAR-100 test means over seeds. Curves are summarised by median and
inter-quartile range over runs (the paper's plot) and by mean.

Shared between runs (honest: deterministic and identical for every run): the NB201 encodings, the
candidate sets and latency predictions, and the compiled networks (each run re-seeds their weights).
Never shared: the random draws — run r of an arm uses seed 10_000·setting + 1_000·ARM_SEED[arm] + r,
so no two runs share a seed (the sweep's tuning seeds are 500_000 + r).

Resumable: each (setting, arm) appends one JSON line per finished run to ``units/<setting>_<arm>.jsonl``
and a rerun continues from there. ``--summary`` (also run at the end) writes ``search_fig6.json``,
``search_fig6.md`` and the PNGs into ``benchmarks/results/search/``.

    nice -n 10 python benchmarks/search_fig6.py               # everything (50 runs per arm)
    nice -n 10 python benchmarks/search_fig6.py --parts tuned # + the tuned BRP-NAS arms
    nice -n 19 python benchmarks/search_fig6.py --parts refit # + the refitting BRP-NAS arm
    nice -n 10 python benchmarks/search_fig6.py --parts kernel # + the kernel-predictor BRP-NAS arms
    python benchmarks/search_fig6.py --runs 3 --out /tmp/s6   # a quick check elsewhere
    python benchmarks/search_fig6.py --summary                # re-aggregate what exists
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from search.latency import ArrayLatency, TableLatency
from search.oracle import MAX_TEST, SELECTED
from search.oracle_nas import limits_range, oracle_nas, summarize
from search.problem import Problem, SearchResult
from search.reinforce import Controller
from search.relation import RelationModel
from search.runner import (
    KERNEL_BRP,
    LINEAR_BRP,
    REFIT_BRP,
    TUNED_BRP,
    SearchOptions,
    make_relation_model,
    run_search,
)
from search.space import nb201_space

RESULTS = Path(__file__).resolve().parent / "results" / "search"
DEVICE = "desktop_gpu_gtx_1080ti_fp32"
LIMIT_MS = 5.0
CHECKPOINTS = (50, 100, 150)
METRICS = (MAX_TEST, SELECTED)
PREDICTORS = ("gcn", "layerwise", "flops")
# setting -> arm -> (algorithm, latency source the search filters with, SearchOptions overrides)
ARMS: dict[str, dict[str, tuple[str, str | None, dict[str, Any]]]] = {
    "free": {
        "brp": ("brp", None, {}),
        "brp_tuned": ("brp", None, TUNED_BRP),
        "brp_refit": ("brp", None, REFIT_BRP),
        "brp_kernel": ("brp", None, KERNEL_BRP),
        "brp_linear": ("brp", None, LINEAR_BRP),
        "ae": ("ae", None, {}),
        "reinforce": ("reinforce", None, {}),
        "random": ("random", None, {}),
    },
    "gpu5ms": {
        "brp_gcn": ("brp", "gcn", {}),
        "brp_gcn_tuned": ("brp", "gcn", TUNED_BRP),
        "brp_gcn_kernel": ("brp", "gcn", KERNEL_BRP),
        "brp_gcn_linear": ("brp", "gcn", LINEAR_BRP),
        "ae_layerwise": ("ae", "layerwise", {}),
        "ae_measured": ("ae", "measured", {}),
    },
}
# Arms outside the 30-minute default run, by the part that runs them (--parts tuned / refit).
EXTRA_PARTS: dict[str, tuple[str, ...]] = {
    "tuned": ("brp_tuned", "brp_gcn_tuned"),
    "refit": ("brp_refit",),
    "kernel": ("brp_kernel", "brp_gcn_kernel"),
}
TUNED_ARMS = EXTRA_PARTS["tuned"]
EXTRA_ARMS = {arm: part for part, arms in EXTRA_PARTS.items() for arm in arms}
SETTING_SEED = {"free": 0, "gpu5ms": 1}
# Run r of an arm uses seed 10_000·setting + 1_000·ARM_SEED[arm] + r: no two runs anywhere share a seed
# (the BRP-NAS sweep uses 500_000 + r).
ARM_SEED = {
    "brp": 0,
    "brp_gcn": 0,
    "brp_tuned": 1,
    "brp_gcn_tuned": 1,
    "brp_refit": 5,
    "brp_kernel": 6,
    "brp_gcn_kernel": 6,
    "brp_linear": 7,
    "brp_gcn_linear": 7,
    "ae": 2,
    "ae_layerwise": 2,
    "reinforce": 3,
    "ae_measured": 3,
    "random": 4,
}
# setting -> (BRP-NAS arm, reference arm) pairs compared
REFERENCE = {
    "free": [("brp", "ae"), ("brp_tuned", "ae"), ("brp_refit", "ae"), ("brp_kernel", "ae"), ("brp_linear", "ae")],
    "gpu5ms": [
        ("brp_gcn", "ae_measured"),
        ("brp_gcn", "ae_layerwise"),
        ("brp_gcn_tuned", "ae_measured"),
        ("brp_gcn_kernel", "ae_measured"),
        ("brp_gcn_linear", "ae_measured"),
    ],
}
# what the summary shows of each arm's SearchOptions
SHOWN = {
    "brp": (
        "budget",
        "iterations",
        "alpha",
        "relation",
        "hidden",
        "steps",
        "ensemble",
        "target",
        "temperature",
        "refit_every",
        "refit_until",
        "length_scale",
        "l2",
        "optimism",
    ),
    "ae": ("population", "sample"),
    "reinforce": (),
    "random": (),
}
NO_SIZES = argparse.Namespace(hidden=None, steps=None)
TARGET_SPEEDUP = 3.0
TARGET_AT_100 = 73.3
OPTIMUM = 73.51


def units_dir(out: Path) -> Path:
    return out / "units"


# -- latency predictors ------------------------------------------------------------------------------
def predictions_path(out: Path) -> Path:
    return units_dir(out) / "latency_predictions.npz"


def train_predictors(out: Path, seed: int = 0, epochs: int | None = None) -> dict[str, np.ndarray]:
    """Fit GCN / layer-wise / FLOPs on 900 measured models (+100 validation); predict all indices."""
    path = predictions_path(out)
    if path.exists():
        with np.load(path) as data:
            return {name: data[name] for name in PREDICTORS}
    from predictors.baselines import FlopsPredictor, LayerwisePredictor
    from predictors.latency import LatencyPredictor
    from predictors.regressor import TrainConfig

    space = nb201_space()
    measured = TableLatency(DEVICE).values
    usable = np.flatnonzero(np.isfinite(measured))
    order = np.random.default_rng(seed).permutation(usable)
    train, val = order[:900], order[900:1000]
    adj, feat = space.encodings.adjacency, space.encodings.features
    start = time.perf_counter()
    gcn = LatencyPredictor(train=None if epochs is None else TrainConfig(epochs=epochs))
    report = gcn.fit(adj[train], feat[train], measured[train], val=(adj[val], feat[val], measured[val]))
    gcn_seconds = time.perf_counter() - start
    models = {
        "gcn": gcn,
        "layerwise": LayerwisePredictor().fit(adj[train], feat[train], measured[train]),
        "flops": FlopsPredictor().fit(adj[train], feat[train], measured[train]),
    }
    valid = space.valid_indices
    preds: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"device": DEVICE, "train": 900, "val": 100, "split_seed": seed}
    test = order[1000:]
    for name, model in models.items():
        values = np.full(space.size, np.nan)
        values[valid] = model.predict(adj[valid], feat[valid])
        preds[name] = values
        err = np.abs(values[test] / measured[test] - 1.0)
        meta[name] = {"within_10pct_test": float(np.mean(err <= 0.10)), "within_5pct_test": float(np.mean(err <= 0.05))}
    meta["gcn"].update(epochs=report.epochs, max_epochs=gcn.train.epochs, train_seconds=round(gcn_seconds, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **preds)
    (units_dir(out) / "latency_predictions.json").write_text(json.dumps(meta, indent=1))
    return preds


# -- search runs -------------------------------------------------------------------------------------
def make_problem(setting: str, source: str | None, preds: dict[str, np.ndarray] | None) -> Problem:
    if setting == "free":
        return Problem.build()
    measured = TableLatency(DEVICE)
    if source == "measured":
        predicted: Any = measured
    else:
        assert preds is not None and source is not None
        predicted = ArrayLatency(preds[source], name=f"{source}:{DEVICE}")
    return Problem.build(LIMIT_MS, predicted=predicted, measured=measured)


def unit_file(out: Path, setting: str, arm: str) -> Path:
    return units_dir(out) / f"{setting}_{arm}.jsonl"


def read_units(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def steps_of(curve: np.ndarray) -> list[list[float]]:
    """A best-so-far curve as its change points ``[[t, value], ...]`` (t = trained models, 1-based)."""
    out: list[list[float]] = []
    for t, v in enumerate(curve, start=1):
        if not np.isnan(v) and (not out or round(float(v), 4) != out[-1][1]):
            out.append([t, round(float(v), 4)])
    return out


def curve_of(points: list[list[float]], length: int) -> np.ndarray:
    """Inverse of :func:`steps_of`: NaN before the first change point."""
    curve = np.full(length, np.nan)
    for t, v in points:
        curve[int(t) - 1 :] = v
    return curve


def compact(result: SearchResult, seconds: float, cpu_seconds: float | None = None) -> dict[str, Any]:
    c = result.curves()
    selected, best = result.selected, result.best_test
    info = {k: v for k, v in result.info.items() if k != "iterations"}
    return {
        "seed": result.seed,
        "total": result.total,
        MAX_TEST: steps_of(c[MAX_TEST]),
        SELECTED: steps_of(c[SELECTED]),
        "selected_index": None if selected is None else selected.index,
        "best_index": None if best is None else best.index,
        "trained": len(result.trace),
        "found": sum(e.found for e in result.trace),
        "cache_hits": result.cache_hits,
        "seconds": round(seconds, 2),
        "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 2),  # all threads of this process
        "info": info,
    }


def arm_options(algo: str, total: int, overrides: dict[str, Any], options: argparse.Namespace) -> SearchOptions:
    """The arm's SearchOptions: the shared defaults (the CLI's), the arm's overrides, then --hidden/--steps."""
    sizes = {k: v for k, v in (("hidden", options.hidden), ("steps", options.steps)) if v is not None}
    return SearchOptions(algo, total, **{**overrides, **sizes})


def run_seed(setting: str, arm: str, run: int) -> int:
    return 10_000 * SETTING_SEED[setting] + 1_000 * ARM_SEED[arm] + run


def run_arms(
    out: Path, settings: list[str], runs: int, total: int, options: argparse.Namespace, part: str | None = None
) -> None:
    """Run the default arms of ``settings`` (or, with ``part``, only that extra part's arms)."""
    only = None if getattr(options, "arms", None) is None else set(options.arms.split(","))
    preds = train_predictors(out, epochs=options.gcn_epochs) if "gpu5ms" in settings else None
    relations: dict[tuple[Any, ...], RelationModel] = {}  # one compiled predictor per configuration
    controller: Controller | None = None
    for setting in settings:
        for arm, (algo, source, overrides) in ARMS[setting].items():
            if EXTRA_ARMS.get(arm) != part or (only is not None and arm not in only):
                continue
            path = unit_file(out, setting, arm)
            done = len(read_units(path))
            if done >= runs:
                continue
            problem = make_problem(setting, source, preds)
            opts = arm_options(algo, total, overrides, options)
            relation = None
            if algo == "brp":
                key = (
                    opts.relation,
                    opts.hidden,
                    opts.steps,
                    opts.learning_rate,
                    opts.target,
                    opts.temperature,
                    opts.ensemble,
                    opts.length_scale,
                    opts.l2,
                    opts.optimism,
                )
                # (refit_every / refit_until change the search, not the predictor: same compiled model)
                relation = relations.get(key) or relations.setdefault(key, make_relation_model(opts))
            if algo == "reinforce" and controller is None:
                controller = Controller()
            for r in range(done, runs):
                seed = run_seed(setting, arm, r)
                start, cpu = time.perf_counter(), time.process_time()
                result = run_search(problem, opts, seed, relation_model=relation, controller=controller)
                row = {"run": r, **compact(result, time.perf_counter() - start, time.process_time() - cpu)}
                row["load"] = round(os.getloadavg()[0], 2)
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(
                    f"{setting}/{arm} run {r}: {row['seconds']:.1f}s, max_test {row[MAX_TEST][-1:]}, "
                    f"selected {row[SELECTED][-1:]}",
                    flush=True,
                )


# -- summary -----------------------------------------------------------------------------------------
def curve_stats(rows: list[dict[str, Any]], metric: str) -> dict[str, np.ndarray]:
    curves = np.array([curve_of(row[metric], row["total"]) for row in rows])
    with np.errstate(all="ignore"):
        return {
            "median": np.nanmedian(curves, axis=0),
            "q25": np.nanpercentile(curves, 25, axis=0),
            "q75": np.nanpercentile(curves, 75, axis=0),
            "mean": np.nanmean(curves, axis=0),
        }


def models_to_reach(curve: np.ndarray, value: float) -> int | None:
    hits = np.flatnonzero(curve >= value - 1e-9)
    return int(hits[0]) + 1 if hits.size else None


def rnd(x: Any, digits: int = 3) -> Any:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return None
    return round(float(x), digits)


def optimum(setting: str) -> float:
    """Best test accuracy a search can find in the setting (measured latency under the limit)."""
    from latbench.data import load_accuracy

    test = np.asarray(load_accuracy().column("cifar100", "test", "mean"))
    feasible = nb201_space().valid.copy()
    if setting != "free":
        with np.errstate(invalid="ignore"):
            feasible &= TableLatency(DEVICE).values <= LIMIT_MS
    return float(test[feasible].max())


def default_minutes(timing: dict[str, float]) -> float:
    """Minutes of the parts in the default run (the tuned and refit arms are extra)."""
    return sum(v for k, v in timing.items() if k not in EXTRA_PARTS) / 60


def timing_path(out: Path) -> Path:
    return units_dir(out) / "timing.json"


def add_timing(out: Path, part: str, seconds: float) -> None:
    """Accumulate wall time per part across (resumed) invocations."""
    path = timing_path(out)
    timing = json.loads(path.read_text()) if path.exists() else {}
    timing[part] = round(timing.get(part, 0.0) + seconds, 1)
    path.write_text(json.dumps(timing, indent=1))


def shown_options(opts: SearchOptions) -> dict[str, Any]:
    """The options that shape the arm (each predictor's own only where it is the one used)."""
    own = {
        "kernel": ("length_scale", "l2"),
        "linear": ("l2", "optimism"),
        "gcn": ("hidden", "steps", "ensemble"),
        "onehot": (),
    }
    hidden = {k for rel, keys in own.items() if rel != opts.relation for k in keys} - set(own[opts.relation])
    return {k: v for k, v in asdict(opts).items() if k in SHOWN[opts.algorithm] and k not in hidden}


def summarise(out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {"device": DEVICE, "limit_ms": LIMIT_MS, "settings": {}, "s3": None}
    for setting, arms in ARMS.items():
        block: dict[str, Any] = {"arms": {}, "comparisons": {}}
        stats: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for arm in arms:
            rows = read_units(unit_file(out, setting, arm))
            if not rows:
                continue
            stats[arm] = {m: curve_stats(rows, m) for m in METRICS}
            algo, _, overrides = ARMS[setting][arm]
            block["arms"][arm] = {
                "runs": len(rows),
                "seeds": [min(r["seed"] for r in rows), max(r["seed"] for r in rows)],
                "options": shown_options(arm_options(algo, rows[0]["total"], overrides, NO_SIZES)),
                "total": rows[0]["total"],
                "seconds_per_run": rnd(np.mean([r["seconds"] for r in rows]), 2),
                "cpu_seconds_per_run": rnd(
                    np.mean([r["cpu_seconds"] for r in rows if r.get("cpu_seconds") is not None] or [np.nan]), 2
                ),
                "mean_load": rnd(np.mean([r["load"] for r in rows if "load" in r] or [np.nan]), 1),
                "found_share": rnd(np.mean([r["found"] / max(1, r["trained"]) for r in rows])),
                **{
                    m: {
                        f"{kind}_at_{t}": rnd(stats[arm][m][kind][t - 1])
                        for kind in ("mean", "median", "q25", "q75")
                        for t in CHECKPOINTS
                        if t <= rows[0]["total"]
                    }
                    for m in METRICS
                },
                "curves": {m: {k: [rnd(v) for v in arr] for k, arr in stats[arm][m].items()} for m in METRICS},
            }
        for target, ref in REFERENCE[setting]:
            if target not in stats or ref not in stats:
                continue
            comp: dict[str, Any] = {}
            for m in METRICS:
                for kind in ("median", "mean"):
                    ref_curve, curve = stats[ref][m][kind], stats[target][m][kind]
                    if ref_curve.size < 150:
                        continue
                    value = float(ref_curve[149])
                    needed = models_to_reach(curve, value)
                    comp[f"{m}_{kind}"] = {
                        "reference_at_150": rnd(value),
                        "models_needed": needed,
                        "fewer_models_factor": rnd(150 / needed, 2) if needed else None,
                        "target_factor": TARGET_SPEEDUP,
                    }
            block["comparisons"][f"{target}_vs_{ref}"] = comp
        block["optimum"] = rnd(optimum(setting))
        if setting == "free":
            block["target_at_100"] = {
                arm: {
                    m: {"mean": rnd(stats[arm][m]["mean"][99]), "target": TARGET_AT_100, "optimum": OPTIMUM}
                    for m in METRICS
                }
                for arm in ("brp", "brp_tuned", "brp_refit", "brp_kernel", "brp_linear")
                if arm in stats and stats[arm][MAX_TEST]["mean"].size >= 100
            }
        summary["settings"][setting] = block
    summary["s3"] = s3_summary(out)
    run_seconds = sum(
        a["seconds_per_run"] * a["runs"] for b in summary["settings"].values() for a in b["arms"].values()
    )
    if timing_path(out).exists():
        summary["timing_seconds"] = json.loads(timing_path(out).read_text())
    meta_path = units_dir(out) / "latency_predictions.json"
    train_seconds = 0.0
    if meta_path.exists():
        summary["latency_predictors"] = json.loads(meta_path.read_text())
        train_seconds = summary["latency_predictors"]["gcn"]["train_seconds"]
    summary["compute_seconds"] = {"search_runs": rnd(run_seconds, 1), "gcn_latency_predictor": train_seconds}
    return summary


def s3_summary(out: Path) -> dict[str, Any] | None:
    path = predictions_path(out)
    if not path.exists():
        return None
    from latbench.data import load_accuracy

    with np.load(path) as data:
        preds = {name: data[name] for name in PREDICTORS}
    measured = TableLatency(DEVICE).values
    accuracy = np.asarray(load_accuracy().column("cifar100", "test", "mean"))
    limits = limits_range(1.0, 7.0, 0.1)
    result: dict[str, Any] = {"limits_ms": limits.tolist(), "accuracy": "CIFAR-100 test, mean over seeds"}
    for name, values in preds.items():
        curves = oracle_nas(values, measured, accuracy, limits)
        result[name] = {
            "summary": {k: rnd(v) for k, v in summarize(curves).items()},
            "curves": {k: [rnd(v) for v in arr] for k, arr in curves.items() if k not in ("pick", "best")},
        }
    return result


# -- outputs -----------------------------------------------------------------------------------------
def render_md(summary: dict[str, Any]) -> str:
    lines = ["# BRP-NAS Fig. 6 / Fig. 2 / Fig. S3 on NB201 CIFAR-100 (search package)", ""]
    lines += [
        "Reproduce: `nice -n 10 python benchmarks/search_fig6.py` (resumable; `--summary` re-aggregates).",
        "",
        "Curves are over trained models. `max_test`: best test accuracy among the found models so far (the "
        "paper's plots); `selected`: test accuracy of the found model with the best validation accuracy "
        "seen (what a search reports). Accuracies: CIFAR-100 test, mean over seeds; searches see one "
        "random seed's validation accuracy per training. Optimum: 73.51 % (index 9930).",
        "",
        "Fair comparison: every arm uses the same oracle and noise model and the same budget accounting "
        "(cache mode everywhere: each distinct trained model costs one, none is ever paid for or re-drawn "
        "twice; AE and REINFORCE get re-visited models from the cache for free). Seeds: no two runs share "
        "one (column `seeds`). `brp`/`brp_gcn`: the paper's K=100, I=5, α=0.5, hard targets (the defaults); "
        "`*_tuned`: the configuration picked on separate tuning seeds before these runs (`brp_sweep.md`); "
        "`brp_refit`: not the paper's Algorithm 1 — the predictor is also retrained every few models of the "
        "final phase (configuration picked on the tuning seeds, `brp_sweep.md`, round 3); "
        "`brp_kernel`/`brp_gcn_kernel`: not the paper's predictor — Algorithm 1 with a kernel binary relation "
        "predictor on structural descriptors of the cell (`search.relation.KernelRelationModel`), refitted "
        "after every trained model (configuration picked on the tuning seeds, `brp_sweep.md`, round 4); "
        "`brp_linear`/`brp_gcn_linear`: not the paper's predictor either — Algorithm 1 with a binary relation "
        "predictor linear in the same descriptors, ranked by an upper confidence bound from the fit's "
        "curvature (`search.relation.LinearRelationModel`), refitted after every trained model "
        "(configuration picked on the tuning seeds, `brp_sweep.md`, round 5). "
        "`s/run` is wall time on 2 CPU cores shared with other jobs; `CPU s` is this "
        "process's CPU time per run, `load` the 1-minute load average when the run ended.",
        "",
    ]
    for setting, block in summary["settings"].items():
        title = (
            "unconstrained (Fig. 6 left)"
            if setting == "free"
            else f"{LIMIT_MS:g} ms on {DEVICE} (Fig. 6 right, Fig. 2)"
        )
        lines += [f"## {setting}: {title}", "", f"Best test accuracy that can be found here: {block['optimum']}.", ""]
        lines += [
            "| arm | runs | seeds | s/run [CPU s, load] | metric | mean @50 | mean @100 | mean @150 "
            "| median @150 [IQR] |"
        ]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        for arm, a in block["arms"].items():
            for m in METRICS:
                v = a[m]
                cost = f"{a['seconds_per_run']} [{a.get('cpu_seconds_per_run')}, {a.get('mean_load')}]"
                lines.append(
                    f"| {arm} | {a['runs']} | {a['seeds'][0]}-{a['seeds'][1]} | {cost} | {m} | {v.get('mean_at_50')} | "
                    f"{v.get('mean_at_100')} | {v.get('mean_at_150')} | {v.get('median_at_150')} "
                    f"[{v.get('q25_at_150')}, {v.get('q75_at_150')}] |"
                )
        lines.append("")
        for arm, a in block["arms"].items():
            if a.get("options"):
                lines.append(f"- {arm}: " + ", ".join(f"{k}={v}" for k, v in a["options"].items()))
        lines.append("")
        for name, comp in block["comparisons"].items():
            lines += [
                f"Trained models {name.split('_vs_')[0]} needs to reach {name.split('_vs_')[1]}'s value at 150 "
                f"(target: {TARGET_SPEEDUP:g}x fewer):",
                "",
            ]
            lines += ["| curve | reference @150 | models needed | fewer-models factor | target met |"]
            lines += ["|---|---|---|---|---|"]
            for key, c in comp.items():
                met = c["fewer_models_factor"] is not None and c["fewer_models_factor"] >= TARGET_SPEEDUP
                lines.append(
                    f"| {key} | {c['reference_at_150']} | {c['models_needed']} | {c['fewer_models_factor']} | "
                    f"{'yes' if met else 'no'} |"
                )
            lines.append("")
        for arm, t in block.get("target_at_100", {}).items():
            lines.append(
                f"{arm}: mean test accuracy at 100 trained models (target >= {TARGET_AT_100}): "
                + ", ".join(
                    f"{m} {t[m]['mean']} ({'met' if (t[m]['mean'] or 0) >= TARGET_AT_100 else 'not met'})"
                    for m in METRICS
                )
            )
            lines.append("")
    s3 = summary.get("s3")
    if s3:
        lines += ["## Fig. S3: oracle NAS on the desktop GPU, limits 1-7 ms", ""]
        lines += [
            "| predictor | FP rate | FN rate | mean missed acc | mean over-claimed acc | mean FP models | "
            "mean FN models |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in PREDICTORS:
            s = s3[name]["summary"]
            lines.append(
                f"| {name} | {s['false_positive_rate']} | {s['false_negative_rate']} | {s['mean_missed_accuracy']} | "
                f"{s['mean_over_claimed_accuracy']} | {s['mean_fp_models']} | {s['mean_fn_models']} |"
            )
        lines.append("")
    if "latency_predictors" in summary:
        lp = summary["latency_predictors"]
        lines.append(
            "Latency predictors (900 train / 100 val, test on the rest): "
            + ", ".join(f"{n} {lp[n]['within_10pct_test']:.3f} within ±10%" for n in PREDICTORS if n in lp)
        )
        lines.append("")
    cs = summary["compute_seconds"]
    lines.append(
        f"Compute (sum over all units, across resumptions): search runs {cs['search_runs']} s, "
        f"GCN latency predictor training {cs['gcn_latency_predictor']} s."
    )
    lines.append("")
    if "timing_seconds" in summary:
        lines.append(
            "Wall time per part (summed over invocations; 2 CPU cores shared with other jobs, so it grows "
            "with their load): "
            + ", ".join(f"{k} {v:.0f} s" for k, v in summary["timing_seconds"].items())
            + f"; default parts {default_minutes(summary['timing_seconds']):.1f} min."
        )
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for setting, block in summary["settings"].items():
        if not block["arms"]:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        for ax, metric in zip(axes, METRICS, strict=True):
            for arm, a in block["arms"].items():
                c = a["curves"][metric]
                x = np.arange(1, len(c["median"]) + 1)
                med = np.array([np.nan if v is None else v for v in c["median"]])
                lo = np.array([np.nan if v is None else v for v in c["q25"]])
                hi = np.array([np.nan if v is None else v for v in c["q75"]])
                ax.plot(x, med, label=f"{arm} ({a['runs']} runs)")
                ax.fill_between(x, lo, hi, alpha=0.2)
            ax.axhline(OPTIMUM, color="gray", lw=0.8, ls=":")
            ax.set_xlabel("trained models")
            ax.set_title(f"{setting}: {metric} (median, IQR)")
            ax.set_ylim(70.0, 73.7)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("CIFAR-100 test accuracy (%)")
        axes[0].legend(loc="lower right")
        fig.tight_layout()
        name = "fig6_left.png" if setting == "free" else "fig6_right.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)
    s3 = summary.get("s3")
    if s3:
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
        panels = ("false_positive", "false_negative", "missed_accuracy", "over_claimed_accuracy")
        for ax, panel in zip(axes, panels, strict=True):
            for name in PREDICTORS:
                ax.plot(s3["limits_ms"], [np.nan if v is None else v for v in s3[name]["curves"][panel]], label=name)
            ax.set_title(panel.replace("_", " "))
            ax.set_xlabel("latency limit (ms)")
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(out / "figS3.png", dpi=110)
        plt.close(fig)
        paths.append(out / "figS3.png")
    return paths


def write_summary(out: Path) -> dict[str, Any]:
    summary = summarise(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_fig6.json").write_text(json.dumps(summary, indent=1))
    (out / "search_fig6.md").write_text(render_md(summary))
    plot(summary, out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="predictors,free,gpu5ms,s3", help="comma list of the parts to run")
    parser.add_argument("--runs", type=int, default=50, help="runs per (setting, arm) (default 50)")
    parser.add_argument("--total", type=int, default=300, help="trained models per run (default 300)")
    parser.add_argument("--hidden", type=int, help="GCN relation predictor width (default: SearchOptions')")
    parser.add_argument("--steps", type=int, help="GCN relation predictor steps per fit (default: SearchOptions')")
    parser.add_argument("--gcn-epochs", type=int, help="cap the GCN latency predictor's epochs (quick checks)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--summary", action="store_true", help="only aggregate existing units")
    parser.add_argument("--arms", help="comma list: run only these arms of the chosen parts (default: all)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"predictors", "free", "gpu5ms", "s3", *EXTRA_PARTS}
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}")
    if not args.summary:
        units_dir(args.out).mkdir(parents=True, exist_ok=True)
        if {"predictors", "gpu5ms", "s3", "tuned"} & set(parts):
            start = time.perf_counter()
            train_predictors(args.out, epochs=args.gcn_epochs)
            add_timing(args.out, "predictors", time.perf_counter() - start)
        for setting in ("free", "gpu5ms"):
            if setting in parts:
                start = time.perf_counter()
                run_arms(args.out, [setting], args.runs, args.total, args)
                add_timing(args.out, setting, time.perf_counter() - start)
        for part in EXTRA_PARTS:
            if part in parts:
                start = time.perf_counter()
                settings = [s for s, arms in ARMS.items() if any(EXTRA_ARMS.get(a) == part for a in arms)]
                run_arms(args.out, settings, args.runs, args.total, args, part=part)
                add_timing(args.out, part, time.perf_counter() - start)
    start = time.perf_counter()
    summary = write_summary(args.out)
    print(render_md(summary))
    print(f"summary + plots: {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
