"""Table S4 of the paper: Spearman correlation of latencies between the 13 LatBench devices, from the store.

The shipped LatBench 2020 release is imported into a fresh SQLite store with the project's own import
(``latbench.store.releases.import_latbench_2020``, what ``eagle latbench import`` runs), and each
device's latencies are read back through the store API (``predictors.service.load_device_data``: the
newest measurement per valid cell). ρ of a pair of devices is over the cells measured on both.

Writes ``benchmarks/results/table_s4_correlation.{json,md,png}``. The store is a temporary file,
deleted afterwards (one import takes seconds; there is nothing to resume).

Run (from the repo root)::

    nice -n 10 python benchmarks/table_s4_correlation.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from latbench import nb201
from predictors import metrics

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
NAME = "table_s4_correlation"


def store_latencies(db_url: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Import the shipped release into the store at ``db_url``; per device, latency (ms) of every index (NaN: none)."""
    from latbench.store import Device, open_store
    from latbench.store.releases import import_latbench_2020
    from predictors.service import load_device_data

    factory = open_store(db_url)
    with factory() as session:
        report = import_latbench_2020(session)
    columns: dict[str, np.ndarray] = {}
    with factory() as session:
        for device in sorted(session.query(Device.name).all()):
            data = load_device_data(session, device[0])
            col = np.full(nb201.NUM_ARCHS, np.nan)
            col[data.indices] = data.latency_ms
            columns[device[0]] = col
    factory.kw["bind"].dispose()
    return columns, report


def correlation_matrix(columns: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Spearman ρ and the number of common cells for every pair of devices (symmetric, ρ = 1 on the diagonal)."""
    names = list(columns)
    k = len(names)
    rho, common = np.eye(k), np.zeros((k, k), dtype=np.int64)
    for i in range(k):
        for j in range(i, k):
            both = np.isfinite(columns[names[i]]) & np.isfinite(columns[names[j]])
            common[i, j] = common[j, i] = int(both.sum())
            if i != j:
                rho[i, j] = rho[j, i] = metrics.spearman(columns[names[i]][both], columns[names[j]][both])
    return names, rho, common


def markdown(names: list[str], rho: np.ndarray, summary: dict[str, Any]) -> str:
    short = [f"d{i + 1}" for i in range(len(names))]
    lines = [
        "# Table S4: Spearman ρ of latencies between the LatBench devices (read from the store)",
        "",
        f"The shipped LatBench 2020 release imported into a fresh SQLite store ({summary['import']['inserted']:,} "
        f"measurements, {summary['import']['seconds']} s) and read back per device through the store API; "
        "ρ over the valid cells measured on both devices.",
        "",
        "| | device | " + " | ".join(short) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for i, name in enumerate(names):
        lines.append(f"| d{i + 1} | {name} | " + " | ".join(f"{rho[i, j]:.2f}" for j in range(len(names))) + " |")
    off = rho[~np.eye(len(names), dtype=bool)]
    lines += [
        "",
        f"Off-diagonal ρ: min {off.min():.3f}, median {np.median(off):.3f}, max {off.max():.3f}. "
        f"Heatmap: `{NAME}.png`. Load average at the run: {summary['load_avg']}.",
    ]
    return "\n".join(lines) + "\n"


def heatmap(names: list[str], rho: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 8))
    im = ax.imshow(rho, cmap="viridis", vmin=min(0.0, float(rho.min())), vmax=1.0)
    ax.set_xticks(range(len(names)), [f"d{i + 1}" for i in range(len(names))])
    ax.set_yticks(range(len(names)), [f"d{i + 1} {n}" for i, n in enumerate(names)], fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j, i, f"{rho[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w" if rho[i, j] < 0.6 else "k"
            )
    fig.colorbar(im, ax=ax, label="Spearman ρ")
    ax.set_title("LatBench: Spearman ρ of latencies between devices (from the store)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(results: Path, db_url: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        columns, report = store_latencies(db_url or f"sqlite:///{Path(tmp) / 'eagle.db'}")
    names, rho, common = correlation_matrix(columns)
    summary: dict[str, Any] = {
        "source": "LatBench 2020 release imported into a fresh SQLite store, read back via load_device_data",
        "import": report,
        "devices": names,
        "spearman": [[round(float(x), 4) for x in row] for row in rho],
        "common_cells": common.tolist(),
        "seconds": round(time.perf_counter() - start, 2),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (results / f"{NAME}.md").write_text(markdown(names, rho, summary))
    heatmap(names, rho, results / f"{NAME}.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    summary = run(args.results)
    print(f"{len(summary['devices'])} devices, {summary['import']['inserted']} measurements, {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
