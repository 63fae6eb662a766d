"""Small latency predictors shipped with Eagle, one per LatBench 2020 device, so that a fresh server predicts
for those devices as soon as it starts (no training first).

Each device's predictor is a ``predictors.latency.LatencyPredictor`` saved in the portable format (JSON
config + Keras weights) in ``<device>/``; ``manifest.json`` records how it was trained (GCN size, split,
the training set as a bitmap over NB201 indices) and its metrics on the held-out LatBench models.
``python -m predictors.pretrained.build`` rebuilds them (see that module for the recipe).

A server registers them as version 1 of its LatBench devices (``register_shipped``); the trainer replaces
them with full-size predictors when a device gets new measurements.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
FORMAT = 1


def package_dir() -> Path:
    return Path(str(resources.files("predictors.pretrained")))


@cache
def manifest() -> dict[str, Any]:
    """The shipped manifest (an empty device map when no predictor is shipped)."""
    path = package_dir() / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "devices": {}}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported manifest format {data.get('format')!r} (expected {FORMAT})")
    return dict(data)


def shipped_devices() -> list[str]:
    return sorted(manifest()["devices"])


def shipped_dir(name: str) -> Path:
    """The directory of a shipped predictor (``name`` is its device)."""
    if name not in manifest()["devices"]:
        known = ", ".join(shipped_devices()) or "none"
        raise FileNotFoundError(f"no shipped predictor {name!r}; shipped: {known}")
    return package_dir() / name


def encode_mask(indices: np.ndarray, size: int) -> str:
    """A set of indices as a base64 bitmap (15,625 NB201 indices take 2.6 kB)."""
    bits = np.zeros(size, dtype=bool)
    bits[np.asarray(indices, dtype=np.int64)] = True
    return base64.b64encode(np.packbits(bits).tobytes()).decode()


def decode_mask(text: str, size: int) -> np.ndarray:
    """Indices set in a bitmap of :func:`encode_mask`."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:size]
    return np.flatnonzero(bits)


def train_indices(device: str) -> np.ndarray:
    entry = manifest()["devices"][device]
    return decode_mask(entry["train_mask"], int(entry["space_size"]))
