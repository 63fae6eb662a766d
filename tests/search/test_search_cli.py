"""``eagle search``: output, trace file, latency sources (REST over a real socket), user errors."""

from __future__ import annotations

import csv
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from latbench.cli import main
from latbench.data import load_latency

DEVICE = "desktop_gpu_gtx_1080ti_fp32"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["search", *argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def test_unconstrained_random_search(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, "--algo", "random", "--total", "25", "--seed", "1")
    assert code == 0
    assert out["trained"] == 25 and out["algorithm"] == "random" and out["limit_ms"] is None
    selected = out["selected"]
    assert set(selected) >= {"index", "arch_str", "valid_acc", "test_acc", "measured_ms", "predicted_ms"}
    assert out["max_test"]["test_acc"] >= selected["test_acc"]
    assert "validation" in out["accuracy"]["seen"] and "test" in out["accuracy"]["reported"]
    assert run_cli(capsys, "--algo", "random", "--total", "25", "--seed", "1")[1] == out


def test_limited_evolution_writes_the_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "runs" / "trace.csv"
    code, out = run_cli(
        capsys,
        "--algo",
        "ae",
        "--device",
        DEVICE,
        "--latency-limit",
        "5",
        "--total",
        "70",
        "--seed",
        "2",
        "--trace",
        str(trace),
    )
    assert code == 0
    assert out["selected"]["measured_ms"] <= 5.0 and out["limit_ms"] == 5.0
    assert out["latency_source"] == f"measured:{DEVICE}"
    rows = list(csv.DictReader(trace.open()))
    assert len(rows) == 70 and [int(r["step"]) for r in rows] == list(range(1, 71))
    measured = load_latency().column(DEVICE)
    assert all(measured[int(r["index"])] <= 5.0 for r in rows)  # filtered by the measured latency itself
    assert out["trace_file"] == str(trace)


def test_brp_json_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "brp.json"
    code, out = run_cli(
        capsys,
        "--algo",
        "brp",
        "--relation",
        "onehot",
        "--budget",
        "20",
        "--iterations",
        "2",
        "--total",
        "30",
        "--seed",
        "3",
        "--trace",
        str(trace),
        "--noise",
        "888",
    )
    assert code == 0 and out["trained"] == 30
    saved = json.loads(trace.read_text())
    assert [e["phase"] for e in saved["trace"]][:10] == ["brp:iter1:random"] * 10
    assert {e["seed"] for e in saved["trace"]} == {888}
    assert saved["run"]["info"]["K"] == 20


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "ae", "--total", "10", "--latency-limit", "5"], "--device is needed"),
        (
            ["--algo", "ae", "--total", "10", "--device", "desktop_gpu_nope_fp32", "--latency-limit", "5"],
            "unknown device",
        ),
        (["--algo", "brp", "--total", "10", "--budget", "20"], "budget K"),
        (["--algo", "ae", "--total", "10", "--device", DEVICE, "--latency-limit", "-1"], "positive"),
        (["--algo", "brp", "--total", "100", "--transfer"], "--transfer needs --predictor"),
        (["--algo", "ae", "--total", "10", "--device", DEVICE, "--server", "http://x", "--predictor", "d"], "not both"),
    ],
)
def test_user_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out = run_cli(capsys, *argv)
    assert code == 2 and message in out["error"]


def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "--algo", "random", "--total", "5", "--seed", "0", "--device", DEVICE]) == 0
    text = capsys.readouterr().out
    assert "trained 5/5 models" in text and "selected (best validation seen)" in text and "ms measured" in text


# -- REST: the CLI's own HTTP client against a real server -----------------------------------------------
class PredictBody(BaseModel):
    device: str
    archs: list[int]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server() -> Iterator[tuple[str, list[int]]]:
    import uvicorn
    from fastapi import FastAPI

    measured = load_latency().column(DEVICE)
    sizes: list[int] = []
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(body: PredictBody) -> dict[str, Any]:
        sizes.append(len(body.archs))
        return {
            "predictions": [
                {"index": i, "latency_ms": None if np.isnan(measured[i]) else float(measured[i]) * 0.8, "valid": True}
                for i in body.archs
            ],
            "predictor_version": "fake-0.8x",
        }

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the test server did not start"
    yield f"http://127.0.0.1:{port}", sizes
    srv.should_exit = True
    thread.join(timeout=10)


def test_search_with_the_rest_endpoint(capsys: pytest.CaptureFixture[str], server: tuple[str, list[int]]) -> None:
    url, sizes = server
    code, out = run_cli(
        capsys,
        "--algo",
        "random",
        "--device",
        DEVICE,
        "--latency-limit",
        "5",
        "--total",
        "40",
        "--seed",
        "4",
        "--server",
        url,
    )
    assert code == 0, out
    assert sizes == [15_284]  # every valid candidate scored in one request
    assert out["latency_source"] == f"rest:{url}:{DEVICE}"
    assert out["selected"]["measured_ms"] <= 5.0  # the 0.8x predictor lets slower models in; none is reported
    assert out["selected"]["predicted_ms"] == pytest.approx(out["selected"]["measured_ms"] * 0.8)
    assert out["found"] < 40  # some trained models were over the limit in truth


@pytest.mark.slow
def test_in_process_predictor_and_transfer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from predictors.gcn import GCNConfig
    from predictors.latency import LatencyPredictor
    from predictors.regressor import TrainConfig
    from search.space import nb201_space

    space = nb201_space()
    measured = load_latency().column(DEVICE)
    train = space.valid_indices[:200]
    predictor = LatencyPredictor(GCNConfig(layers=2, hidden=16), TrainConfig(epochs=3, seed=0))
    predictor.fit(space.encodings.adjacency[train], space.encodings.features[train], measured[train])
    predictor.save(tmp_path / "lat")
    code, out = run_cli(
        capsys,
        "--algo",
        "brp",
        "--device",
        DEVICE,
        "--latency-limit",
        "5",
        "--predictor",
        str(tmp_path / "lat"),
        "--transfer",
        "--steps",
        "20",
        "--budget",
        "20",
        "--iterations",
        "2",
        "--total",
        "25",
        "--seed",
        "0",
    )
    assert code == 0, out
    assert out["trained"] == 25 and out["latency_source"].startswith("predictor:")
    assert out["selected"]["measured_ms"] <= 5.0
    expected = predictor.predict(
        space.encodings.adjacency[[out["selected"]["index"]]], space.encodings.features[[out["selected"]["index"]]]
    )[0]
    assert out["selected"]["predicted_ms"] == pytest.approx(expected, rel=1e-5)
    missing = str(tmp_path / "nope")
    code, out = run_cli(capsys, "--algo", "ae", "--device", DEVICE, "--predictor", missing, "--total", "5")
    assert code == 2 and "cannot load the latency predictor" in out["error"]
