"""Rebuild the shipped predictors from the LatBench 2020 release (``python -m predictors.pretrained.build``).

Recipe, per device: the measured valid cells are shuffled (seed 0) and split into 6,000 training,
1,000 validation and the rest (about 8,200) test models. The GCN is 4 layers x 128 hidden (51 k
parameters, ~210 kB of weights; the paper's 4 x 600 would be 5.6 MB per device), trained with the paper's
recipe (AdamW lr 8e-4, weight decay 5e-4, plateau halving, early stopping on the validation loss) on
standardised log latency, at batch 32 rather than 10 (the larger training set makes epochs long
otherwise). Metrics are on the test models, which no predictor saw.

Resumable: a device already in the manifest is skipped (``--force`` retrains). One process; run it niced
on a shared machine (about 3-4 minutes per device on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from predictors.pretrained import FORMAT, MANIFEST, encode_mask, package_dir

SEED = 0
TRAIN, VAL = 6000, 1000
LAYERS, HIDDEN, BATCH = 4, 128, 32


def _load_manifest(path: Path) -> dict[str, Any]:
    if path.is_file():
        return dict(json.loads(path.read_text()))
    return {
        "format": FORMAT,
        "source": "LatBench 2020 (latbench/data)",
        "recipe": {
            "split_seed": SEED,
            "train": TRAIN,
            "val": VAL,
            "test": "the rest of the measured valid cells",
            "gcn": {"layers": LAYERS, "hidden": HIDDEN},
            "batch_size": BATCH,
            "target": "log",
        },
        "devices": {},
    }


def build_device(device: str, out_root: Path) -> dict[str, Any]:
    from latbench.data import load_latency
    from latbench.graph import encode_all_nb201
    from predictors import metrics
    from predictors.gcn import GCNConfig
    from predictors.latency import LatencyPredictor
    from predictors.regressor import TrainConfig

    enc = encode_all_nb201()
    y = np.asarray(load_latency().column(device), dtype=np.float64)
    measured = np.flatnonzero(np.isfinite(y) & enc.valid)
    order = np.random.default_rng(SEED).permutation(measured)
    train, val, test = order[:TRAIN], order[TRAIN : TRAIN + VAL], order[TRAIN + VAL :]
    gcn = GCNConfig(layers=LAYERS, hidden=HIDDEN)
    cfg = TrainConfig(batch_size=BATCH, seed=SEED)
    predictor = LatencyPredictor(gcn, cfg)
    started = time.perf_counter()
    report = predictor.fit(
        enc.adjacency[train], enc.features[train], y[train], val=(enc.adjacency[val], enc.features[val], y[val])
    )
    seconds = time.perf_counter() - started
    pred = predictor.predict(enc.adjacency[test], enc.features[test])
    scores = {k: round(float(v), 4) for k, v in metrics.summary(pred, y[test]).items()}
    target = out_root / device
    if target.exists():
        shutil.rmtree(target)
    predictor.save(target)
    return {
        "space_size": int(y.shape[0]),
        "measured": int(measured.size),
        "train_count": int(train.size),
        "val_count": int(val.size),
        "test_count": int(test.size),
        "train_mask": encode_mask(train, y.shape[0]),
        "hyperparameters": {"gcn": gcn.to_dict(), "train": {"batch_size": BATCH, "seed": SEED, "target": "log"}},
        "metrics": {**scores, "n_test": int(test.size)},
        "epochs": report.epochs,
        "best_epoch": report.best_epoch,
        "train_seconds": round(seconds, 1),
        "params": int(predictor.model.count_params()) if predictor.model is not None else None,
    }


def main(argv: list[str] | None = None) -> int:
    from latbench.data import load_latency

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", help="comma-separated devices (default: all 13 LatBench devices)")
    parser.add_argument("--out", type=Path, default=package_dir(), help="where to write (default: this package)")
    parser.add_argument("--force", action="store_true", help="retrain devices already built")
    args = parser.parse_args(argv)
    names = [d.name for d in load_latency().devices()]
    if args.devices:
        wanted = [d.strip() for d in args.devices.split(",") if d.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown devices {unknown}; LatBench devices: {', '.join(names)}")
        names = wanted
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / MANIFEST
    data = _load_manifest(path)
    for device in names:
        if device in data["devices"] and not args.force:
            print(f"{device}: already built, skipped", flush=True)
            continue
        entry = build_device(device, args.out)
        data["devices"][device] = entry
        data["devices"] = dict(sorted(data["devices"].items()))
        path.write_text(json.dumps(data, indent=1) + "\n")  # after each device: resumable
        m = entry["metrics"]
        print(
            f"{device}: ±5% {m['within_5pct']:.1f}  ±10% {m['within_10pct']:.1f}  rho {m['spearman']:.3f}  "
            f"({entry['epochs']} epochs, {entry['train_seconds']:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
