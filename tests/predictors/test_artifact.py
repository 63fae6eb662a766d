"""predictors.artifact: the one writer/reader of saved predictor directories (no network needed)."""

from __future__ import annotations

import json

import pytest

from predictors.artifact import CONFIG_FILE, WEIGHTS_FILE, read_artifact, write_artifact


class _Weights:
    """Stands in for a keras.Model: records that the config was not there yet when weights were saved."""

    def __init__(self) -> None:
        self.config_existed: bool | None = None

    def save_weights(self, path) -> None:
        self.config_existed = (path.parent / CONFIG_FILE).exists()
        path.write_bytes(b"weights")


def test_write_then_read_round_trips_the_config_and_writes_it_last(tmp_path) -> None:
    model = _Weights()
    meta = {"format": 1, "kind": "latency", "gcn": {"hidden": 8}}
    path = write_artifact(tmp_path / "a" / "b", meta, model)
    assert path == tmp_path / "a" / "b"
    assert model.config_existed is False  # the config marks a complete save
    assert (path / WEIGHTS_FILE).read_bytes() == b"weights"
    assert (path / CONFIG_FILE).read_text() == json.dumps(meta, indent=2)
    assert read_artifact(path, "latency", formats=(1,)) == (path, meta)


def test_read_refuses_missing_files_other_formats_and_kinds(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=f"not a saved predictor \\(needs {CONFIG_FILE} and {WEIGHTS_FILE}"):
        read_artifact(tmp_path, "latency")
    write_artifact(tmp_path, {"format": 2, "kind": "accuracy"})  # no weights
    with pytest.raises(FileNotFoundError, match="not a saved multi-device GCN"):
        read_artifact(tmp_path, "accuracy", what="multi-device GCN")
    assert read_artifact(tmp_path, "accuracy", weights=False)[1]["format"] == 2
    with pytest.raises(ValueError, match=r"unsupported format 2 \(expected 1\)"):
        read_artifact(tmp_path, "accuracy", formats=(1,), weights=False)
    with pytest.raises(ValueError, match="holds a 'accuracy' predictor, not 'latency'"):
        read_artifact(tmp_path, "latency", weights=False)


def test_a_custom_config_file_name(tmp_path) -> None:
    write_artifact(tmp_path, {"format": 1, "kind": "latency"}, config_file="fewshot.json")
    assert not (tmp_path / CONFIG_FILE).exists()
    path, meta = read_artifact(tmp_path, "latency", formats=(1, 2), config_file="fewshot.json", weights=False)
    assert path == tmp_path and meta == {"format": 1, "kind": "latency"}
