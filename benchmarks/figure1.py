"""Figure 1 of the paper: FLOPs vs latency, layer-wise and GCN predictions vs measured, desktop CPU.

One split of the measured models of ``desktop_cpu_core_i7_7820x_fp32`` (900 training / 100 validation /
the rest test, the split of ``benchmarks/table1_latency.py`` with seed 0). On the test models:

1. FLOPs of the network vs measured latency (the FLOPs linear fit's ±10% share and ρ annotated);
2. the layer-wise predictor (per-op costs fitted by NNLS on the training models) vs measured;
3. the GCN latency predictor (the default ``LatencyPredictor`` recipe, no layer-wise prior, so the GCN
   stands alone) vs measured.

Writes ``benchmarks/results/figure1.{png,json,md}``.

Run (from the repo root)::

    nice -n 10 python benchmarks/figure1.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from latbench.data import load_latency
from latbench.graph import encode_all_nb201
from predictors import metrics
from predictors.baselines import FlopsPredictor, LayerwisePredictor, nb201_flops
from predictors.gcn import GCNConfig
from predictors.latency import LatencyPredictor

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DEVICE = "desktop_cpu_core_i7_7820x_fp32"
NAME = "figure1"


def split(valid_idx: np.ndarray, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As table1_latency.split: n train, n/9 validation, the rest test."""
    n_val = max(1, round(n_train / 9))
    order = np.random.default_rng(seed).permutation(valid_idx)
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    out = metrics.within_shares(pred, true, (0.01, 0.05, 0.10))
    out.update(spearman=metrics.spearman(pred, true), kendall=metrics.kendall_tau(pred, true))
    return out


def compute(
    device: str = DEVICE, n_train: int = 900, seed: int = 0, gcn: GCNConfig | None = None, epochs: int | None = None
) -> dict[str, Any]:
    """Train the three predictors on one split; test-set arrays and scores."""
    enc = encode_all_nb201()
    adj, feat = enc.adjacency, enc.features
    y = np.asarray(load_latency().column(device), dtype=np.float64)
    tr, va, te = split(np.flatnonzero(np.isfinite(y)), n_train, seed)
    train = LatencyPredictor.default_train if epochs is None else replace(LatencyPredictor.default_train, epochs=epochs)
    gcn_model = LatencyPredictor(gcn, replace(train, seed=seed))
    report = gcn_model.fit(adj[tr], feat[tr], y[tr], val=(adj[va], feat[va], y[va]))
    flops_fit = FlopsPredictor().fit(adj[tr], feat[tr], y[tr])
    layerwise = LayerwisePredictor().fit(adj[tr], feat[tr], y[tr])
    preds = {
        "flops": flops_fit.predict(adj[te], feat[te]),
        "layerwise": layerwise.predict(adj[te], feat[te]),
        "gcn": gcn_model.predict(adj[te], feat[te]),
    }
    return {
        "device": device,
        "n_train": int(tr.size),
        "n_val": int(va.size),
        "n_test": int(te.size),
        "seed": seed,
        "test_index": te,
        "measured_ms": y[te],
        "flops": nb201_flops(adj[te], feat[te]),
        "pred_ms": preds,
        "scores": {k: score(v, y[te]) for k, v in preds.items()},
        "gcn_epochs": report.epochs,
        "gcn_train_seconds": round(report.seconds, 1),
        "gcn_train_config": asdict(gcn_model.train),
        "flops_coef_ms_per_mac_and_ms": flops_fit.coef,
    }


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = data["measured_ms"]
    s = data["scores"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    ax = axes[0]
    ax.scatter(data["flops"] / 1e6, y, s=3, alpha=0.3, color="tab:gray", rasterized=True)
    ax.set_xlabel("FLOPs (M MACs)")
    ax.set_ylabel("measured latency (ms)")
    ax.set_title("FLOPs vs latency")
    ax.text(
        0.03,
        0.97,
        f"linear fit: ±10% {s['flops']['within_10pct']:.1f}%\nρ(FLOPs, latency) {s['flops']['spearman']:.3f}",
        transform=ax.transAxes,
        va="top",
        fontsize=9,
        bbox={"facecolor": "white", "alpha": 0.8},
    )
    lo, hi = float(np.min(y)) * 0.9, float(np.max(y)) * 1.1
    for ax, key, title, colour in (
        (axes[1], "layerwise", "layer-wise prediction", "tab:orange"),
        (axes[2], "gcn", f"GCN prediction ({data['n_train']} training models)", "tab:blue"),
    ):
        pred = data["pred_ms"][key]
        ax.scatter(y, pred, s=3, alpha=0.3, color=colour, rasterized=True)
        grid = np.array([lo, hi])
        ax.plot(grid, grid, "k-", lw=0.8)
        ax.fill_between(grid, grid * 0.9, grid * 1.1, color="k", alpha=0.08, label="±10%")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured latency (ms)")
        ax.set_ylabel("predicted latency (ms)")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
        sc = s[key]
        ax.text(
            0.03,
            0.97,
            f"±1/5/10%: {sc['within_1pct']:.1f} / {sc['within_5pct']:.1f} / {sc['within_10pct']:.1f}\n"
            f"ρ {sc['spearman']:.3f}, τ {sc['kendall']:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8},
        )
    fig.suptitle(f"{data['device']}: {data['n_test']:,} test models (LatBench)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(results: Path, **kwargs: Any) -> dict[str, Any]:
    start = time.perf_counter()
    data = compute(**kwargs)
    results.mkdir(parents=True, exist_ok=True)
    plot(data, results / f"{NAME}.png")
    summary = {
        k: data[k]
        for k in (
            "device",
            "n_train",
            "n_val",
            "n_test",
            "seed",
            "scores",
            "gcn_epochs",
            "gcn_train_seconds",
            "gcn_train_config",
            "flops_coef_ms_per_mac_and_ms",
        )
    }
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    (results / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"# Figure 1: FLOPs, layer-wise and GCN latency predictors on {summary['device']}",
        "",
        f"Split: {summary['n_train']} training / {summary['n_val']} validation / {summary['n_test']:,} test models "
        f"(seed {summary['seed']}); figure: `{NAME}.png`.",
        "",
        "| predictor | ±1% | ±5% | ±10% | Spearman ρ | Kendall τ |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("flops", "FLOPs (linear fit)"), ("layerwise", "layer-wise"), ("gcn", "GCN")):
        sc = summary["scores"][key]
        lines.append(
            f"| {label} | {sc['within_1pct']:.1f} | {sc['within_5pct']:.1f} | {sc['within_10pct']:.1f} "
            f"| {sc['spearman']:.3f} | {sc['kendall']:.3f} |"
        )
    lines += [
        "",
        f"GCN: {summary['gcn_epochs']} epochs, {summary['gcn_train_seconds']} s of training; load average at the "
        f"end {summary['load_avg']} (2 shared cores).",
    ]
    (results / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=DEVICE)
    parser.add_argument("--n-train", type=int, default=900)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    summary = run(args.results, device=args.device, n_train=args.n_train, seed=args.seed)
    print(json.dumps(summary["scores"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
