"""Saved predictor directories: a JSON config (kind, configs, fitted state) plus, for networks, Keras weights.

One writer and one reader for every predictor kind (regressors, the binary relation predictor, the
multi-device GCN, the few-shot predictor), so that they check and lay out their files the same way.
No keras import here: the few-shot predictor saves no weights and stays light.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"


def write_artifact(
    directory: str | Path, meta: dict[str, Any], model: keras.Model | None = None, config_file: str = CONFIG_FILE
) -> Path:
    """Create ``directory``, save ``model``'s weights (when given), then ``meta`` as indented JSON.

    The config is written last, so its presence marks a complete save (benchmarks test for it).
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save_weights(path / WEIGHTS_FILE)
    (path / config_file).write_text(json.dumps(meta, indent=2))
    return path


def read_artifact(
    directory: str | Path,
    kind: str,
    what: str = "predictor",
    formats: Collection[int] | None = None,
    config_file: str = CONFIG_FILE,
    weights: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """(directory, config) of a saved ``kind``; checks the files are there, the format (when
    ``formats`` is given) and the kind. ``what`` names the artifact in the errors."""
    path = Path(directory)
    config_path = path / config_file
    needs = [config_file, WEIGHTS_FILE] if weights else [config_file]
    if not all((path / name).is_file() for name in needs):
        raise FileNotFoundError(f"{path} is not a saved {what} (needs {' and '.join(needs)})")
    meta = json.loads(config_path.read_text())
    if formats is not None and meta.get("format") not in formats:
        expected = " or ".join(str(f) for f in sorted(formats))
        raise ValueError(f"{config_path}: unsupported format {meta.get('format')!r} (expected {expected})")
    if meta.get("kind") != kind:
        raise ValueError(f"{config_path} holds a {meta.get('kind')!r} {what}, not {kind!r}")
    return path, meta
