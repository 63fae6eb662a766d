"""Training time of the 900-model latency GCN: the paper's recipe and ``LatencyPredictor.recommended()``.

For each device, recipe and split seed, one *unit* trains the GCN on 900 measured models (100 more for
validation / early stopping; the split of ``benchmarks/table1_latency.py``) and records: epochs run,
training seconds, the first epoch's seconds (it includes the XLA compilation), the steady seconds per
epoch (the other epochs), the ±5/10% shares on the test models, and the 1-minute load average before and
after (the machine is shared; time grows with the load). Target: ≤ 2 minutes per model.

Recipes: ``paper`` — Table S1 with MSE on the standardised log latency; ``recommended`` —
``LatencyPredictor.recommended(seed)`` (Huber loss, layer-wise prior).

Resumable: units in ``benchmarks/results/train_time/<device>_<recipe>_<seed>.json``; the summary (medians)
goes to ``benchmarks/results/train_time.{json,md}``.

Run (from the repo root)::

    nice -n 10 python benchmarks/train_time.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from _units import add_unit_args, run_units, save_summary

from latbench.data import load_latency
from latbench.graph import encode_all_nb201
from predictors import metrics
from predictors.gcn import GCNConfig
from predictors.latency import LatencyPredictor
from predictors.regressor import TrainConfig

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
NAME = "train_time"
DEVICES = ("desktop_cpu_core_i7_7820x_fp32", "desktop_gpu_gtx_1080ti_fp32", "embedded_tpu_edgetpu_int8")
RECIPES = ("paper", "recommended")
TARGET_SECONDS = 120.0


def split(valid_idx: np.ndarray, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As table1_latency.split: n train, n/9 validation, the rest test."""
    n_val = max(1, round(n_train / 9))
    order = np.random.default_rng(seed).permutation(valid_idx)
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def make(recipe: str, seed: int, gcn: GCNConfig | None, epochs: int | None) -> LatencyPredictor:
    if recipe == "paper":
        model = LatencyPredictor(gcn, TrainConfig(target="log", loss="mse", seed=seed))
    elif recipe == "recommended":
        model = LatencyPredictor.recommended(seed=seed, gcn=gcn)
    else:
        raise ValueError(f"unknown recipe {recipe!r}; known: {RECIPES}")
    if epochs is not None:
        model.train = TrainConfig(**{**asdict(model.train), "epochs": epochs})
    return model


def run_unit(
    device: str, recipe: str, seed: int, n_train: int = 900, gcn: GCNConfig | None = None, epochs: int | None = None
) -> dict[str, Any]:
    import keras

    keras.backend.clear_session()
    enc = encode_all_nb201()
    adj, feat = enc.adjacency, enc.features
    y = np.asarray(load_latency().column(device), dtype=np.float64)
    tr, va, te = split(np.flatnonzero(np.isfinite(y)), n_train, seed)
    model = make(recipe, seed, gcn, epochs)
    ends: list[float] = []
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    report = model.fit(
        adj[tr], feat[tr], y[tr], val=(adj[va], feat[va], y[va]), progress=lambda *_: ends.append(time.perf_counter())
    )
    seconds = time.perf_counter() - start  # includes the layer-wise prior's fit, where there is one
    cpu_seconds = time.process_time() - cpu_start  # all threads of this process: less sensitive to the load
    first = ends[0] - start
    steady = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else float("nan")
    pred = model.predict(adj[te], feat[te])
    return {
        "device": device,
        "recipe": recipe,
        "seed": seed,
        "n_train": int(tr.size),
        "n_val": int(va.size),
        "n_test": int(te.size),
        "epochs": report.epochs,
        "best_epoch": report.best_epoch,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "first_epoch_seconds": round(first, 2),
        "seconds_per_epoch": round(steady, 4),
        **metrics.within_shares(pred, y[te], (0.05, 0.10)),
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "train_config": asdict(model.train),
        "prior": model.prior,
    }


def summarise(results: Path) -> dict[str, Any]:
    units = [json.loads(p.read_text()) for p in sorted((results / NAME).glob("*.json"))]
    rows = []
    for recipe in RECIPES:
        for device in DEVICES:
            group = [u for u in units if u["recipe"] == recipe and u["device"] == device]
            if not group:
                continue
            rows.append(
                {
                    "recipe": recipe,
                    "device": device,
                    "seeds": sorted(u["seed"] for u in group),
                    **{
                        f"median_{k}": float(np.median([u[k] for u in group]))
                        for k in (
                            "epochs",
                            "seconds",
                            "cpu_seconds",
                            "first_epoch_seconds",
                            "seconds_per_epoch",
                            "within_5pct",
                            "within_10pct",
                            "load_avg_before",
                        )
                    },
                    "max_seconds": max(u["seconds"] for u in group),
                }
            )
    overall = {
        recipe: float(np.median([u["seconds"] for u in units if u["recipe"] == recipe]))
        for recipe in RECIPES
        if any(u["recipe"] == recipe for u in units)
    }
    return {"target_seconds": TARGET_SECONDS, "units": len(units), "rows": rows, "median_seconds": overall}


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Training time of the 900-model latency GCN (2-core shared CPU machine)",
        "",
        f"Medians over seeds. Target: ≤ {TARGET_SECONDS:.0f} s per model. First epoch includes the XLA "
        "compilation; s/epoch is the median of the other epochs' mean; CPU s is the process's CPU time (all its "
        "threads; TF uses both cores), less sensitive to the load than wall time. Load: 1-minute load average "
        "before the training (2 cores; above 2 the GCN shares them). The GCN's two threads share the cores with",
        "any other job, so wall time grows with the load: an earlier run of the same recipes beside other",
        "benchmarks (load 2-4 from other jobs) took 0.6-1.2 s per epoch and a median 137 s (recommended).",
        "",
        "| recipe | device | seeds | epochs | wall s (max) | CPU s | first epoch s | s/epoch | ±5% | ±10% | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['recipe']} | {r['device']} | {len(r['seeds'])} | {r['median_epochs']:.0f} "
            f"| {r['median_seconds']:.0f} ({r['max_seconds']:.0f}) | {r['median_cpu_seconds']:.0f} "
            f"| {r['median_first_epoch_seconds']:.1f} "
            f"| {r['median_seconds_per_epoch']:.3f} | {r['median_within_5pct']:.1f} | {r['median_within_10pct']:.1f} "
            f"| {r['median_load_avg_before']:.1f} |"
        )
    lines += [
        "",
        "Median seconds per model over all units: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in summary["median_seconds"].items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def run(results: Path, devices: list[str], recipes: list[str], seeds: list[int], **kwargs: Any) -> dict[str, Any]:
    units = (
        (results / NAME / f"{device}_{recipe}_{seed}.json", partial(run_unit, device, recipe, seed, **kwargs))
        for seed in seeds
        for device in devices
        for recipe in recipes
    )
    run_units(
        units,
        lambda u: (
            f"{u['device']} {u['recipe']} seed={u['seed']}: {u['epochs']} epochs {u['seconds']:.0f} s "
            f"±5% {u['within_5pct']:.1f} (load {u['load_avg_before']})"
        ),
    )
    return write_summary(results)


def write_summary(results: Path) -> dict[str, Any]:
    return save_summary(results, NAME, summarise(results), markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default=",".join(DEVICES[:2]))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    add_unit_args(parser, RESULTS)
    args = parser.parse_args(argv)
    if args.summary:
        write_summary(args.results)
        return 0
    run(args.results, args.devices.split(","), args.recipes.split(","), [int(s) for s in args.seeds.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
