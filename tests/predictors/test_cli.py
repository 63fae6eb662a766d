"""``eagle train latency``, ``eagle trainer`` and ``eagle predict`` (against a real server in this process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.serve import EagleServer
from eagle_server.settings import Settings
from latbench.cli import main
from latbench.store.archs import architecture_rows
from latbench.store.db import make_engine, session_factory, upgrade
from predictors import registry
from tests._helpers import distinct_valid

from ._store_helpers import add_measurements, synthetic_ms

DEVICE = "desktop_cpu_test_box_fp32"
TINY_ARGS = ["--layers", "2", "--hidden", "16", "--epochs", "4", "--train-size", "40", "--batch-size", "16"]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, sessionmaker[Session]]]:
    monkeypatch.delenv("EAGLE_DB_URL", raising=False)
    monkeypatch.setenv("EAGLE_WORKDIR", str(tmp_path / "workdir"))
    url = f"sqlite:///{tmp_path / 'eagle.db'}"
    engine = make_engine(url)
    upgrade(engine)
    yield url, session_factory(engine)
    engine.dispose()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip().startswith("{") else {}, out.out + out.err


def test_train_latency_registers_a_version(store, capsys, tmp_path) -> None:
    url, factory = store
    idx = distinct_valid(60)
    add_measurements(factory, DEVICE, idx, synthetic_ms(idx))
    code, payload, _ = _run(capsys, "train", "latency", "--device", DEVICE, "--db", url, *TINY_ARGS, "--json")
    assert code == 0
    assert (payload["device"], payload["version"], payload["state"], payload["method"]) == (DEVICE, 1, "ready", "gcn")
    assert payload["train_count"] == 40 and "within_10pct" in payload["metrics"]
    assert payload["artifact"] == "predictors/desktop_cpu_test_box_fp32/latency/v1"
    assert (tmp_path / "workdir" / payload["artifact"] / "config.json").is_file()  # EAGLE_WORKDIR
    # Without --json: a human summary on stdout, the progress bar on stderr.
    code, _, text = _run(capsys, "train", "latency", "--device", DEVICE, "--db", url, *TINY_ARGS, "--seed", "3")
    assert code == 0 and f"{DEVICE} latency version 2 (gcn): ready" in text and "held-out" in text
    with factory() as s:
        assert registry.latest_ready(s, DEVICE).version == 2


def test_train_errors_are_one_line(store, capsys) -> None:
    url, factory = store
    add_measurements(factory, DEVICE, distinct_valid(8), [1.0] * 8)
    code, payload, _ = _run(capsys, "train", "latency", "--device", "desktop_cpu_nowhere_fp32", "--db", url, "--json")
    assert code == 2 and "unknown device" in payload["error"] and DEVICE in payload["error"]
    code, payload, _ = _run(capsys, "train", "latency", "--device", DEVICE, "--db", url, "--json")
    assert code == 2 and "too few to train a GCN" in payload["error"] and "--few-shot" in payload["error"]
    code, payload, _ = _run(capsys, "train", "latency", "--device", DEVICE, "--epochs", "0", "--json")
    assert code == 2 and payload["error"] == "--epochs must be positive, got 0"
    code, payload, _ = _run(capsys, "train", "latency", "--device", DEVICE, "--db", "mysql://x/y", "--json")
    assert code == 2 and "cannot open the database" in payload["error"]


def test_trainer_once(store, capsys) -> None:
    url, factory = store
    idx = distinct_valid(50)
    add_measurements(factory, DEVICE, idx, synthetic_ms(idx))
    argv = ["trainer", "--once", "--db", url, "--min-total", "30", "--gcn-min", "40", *TINY_ARGS[:6], "--json"]
    code, payload, _ = _run(capsys, *argv)
    assert code == 0
    assert [(t["device"], t["state"], t["version"]) for t in payload["trained"]] == [(DEVICE, "ready", 1)]
    code, payload, _ = _run(capsys, *argv)
    assert code == 0 and payload == {"trained": []}
    code, payload, _ = _run(capsys, "trainer", "--once", "--db", url, "--min-new", "0", "--json")
    assert code == 2 and payload["error"] == "--min-new must be positive, got 0"


# -- eagle predict ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EagleServer]:
    workdir = tmp_path_factory.mktemp("serve")
    settings = Settings(
        workdir=str(workdir), http_port=0, grpc_address="127.0.0.1:0", import_latbench_on_start=False, api_key="k"
    )
    server = EagleServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_predict_asks_the_server(live: EagleServer, capsys, tmp_path) -> None:
    assert live.engine is not None
    factory = session_factory(live.engine)
    device = "desktop_cpu_predict_box_fp32"
    idx = distinct_valid(60)
    add_measurements(factory, device, idx, synthetic_ms(idx))
    code, payload, text = _run(capsys, "predict", "--device", device, "1", "--server", live.rest_url, "--json")
    assert code == 2 and "no latency predictor is ready" in payload["error"] and "(503)" in payload["error"]
    code, _, _ = _run(
        capsys, "train", "latency", "--device", device, "--db", str(live.engine.url), "--workdir",
        str(tmp_path), *TINY_ARGS, "--json",
    )  # fmt: skip
    assert code == 0
    arch_str = architecture_rows()[idx[1]]["arch_str"]
    invalid = next(r["index"] for r in architecture_rows() if not r["valid"])
    argv = ["predict", "--device", device, str(idx[0]), arch_str, str(invalid), "--server", live.rest_url]
    code, payload, _ = _run(capsys, *argv, "--json")
    assert code == 0 and payload["predictor_version"] == 1
    assert [p["index"] for p in payload["predictions"]] == [idx[0], idx[1], invalid]
    assert payload["predictions"][0]["measured_ms"] == pytest.approx(float(synthetic_ms([idx[0]])[0]))
    code, _, text = _run(capsys, *argv)
    assert code == 0 and "predictor version 1 (gcn)" in text and "ms predicted" in text and "invalid:" in text
    code, payload, _ = _run(capsys, "predict", "--device", "nowhere", "1", "--server", live.rest_url, "--json")
    assert code == 2 and "unknown device" in payload["error"] and "(404)" in payload["error"]
    code, payload, _ = _run(capsys, "predict", "--device", device, "|x|", "--server", live.rest_url, "--json")
    assert code == 2 and "archs[0]" in payload["error"]
    # Predicted accuracy beside the latency, once an accuracy version is trained (into the server's store).
    code, payload, _ = _run(capsys, *argv, "--accuracy", "--json")
    assert code == 2 and "no accuracy predictor is ready" in payload["error"] and "(503)" in payload["error"]
    db = ["--db", str(live.engine.url), "--workdir", str(tmp_path)]
    code, _, _ = _run(capsys, "train", "accuracy", "--samples", "20", *db, *ACCURACY_TINY, "--json")
    assert code == 0
    code, payload, _ = _run(capsys, *argv, "--accuracy", "--json")
    assert code == 0 and payload["accuracy_predictor"]["version"] == 1
    assert [p["accuracy"] is None for p in payload["predictions"]] == [False, False, True]  # the invalid cell
    code, _, text = _run(capsys, *argv, "--accuracy")
    assert code == 0 and "accuracy predictor version 1 (gcn_distilled)" in text and "% predicted" in text


def test_serve_can_run_the_trainer_beside_it(tmp_path: Path) -> None:
    """EAGLE_RUN_TRAINER: `eagle serve` starts `eagle trainer` on its store and stops it with itself."""
    import time

    settings = Settings(
        workdir=str(tmp_path), http_port=0, grpc_address="127.0.0.1:0", import_latbench_on_start=False,
        api_key="k", run_trainer=True,
    )  # fmt: skip
    server = EagleServer(settings)
    server.start()
    try:
        trainer = server.trainer
        assert trainer is not None and "trainer pid" in server.banner()
        deadline = time.monotonic() + 60
        log = tmp_path / "trainer.log"
        while "eagle trainer: watching" not in (log.read_text() if log.exists() else ""):
            assert trainer.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the trainer did not start watching the store"
            time.sleep(0.2)
        assert str(tmp_path / "eagle.db") in log.read_text()
    finally:
        server.stop()
    assert trainer.poll() == 0  # SIGTERM: a clean stop


@pytest.mark.slow
def test_train_suggest_prints_models_and_the_submit_line(capsys) -> None:
    code, payload, _ = _run(
        capsys, "train", "suggest", "--device", "mobile_npu_new_phone_int8", "--count", "12", "--json"
    )
    assert code == 0 and payload["count"] == 12 and len(set(payload["indices"])) == 12
    rows = architecture_rows()
    assert all(rows[i]["valid"] for i in payload["indices"])
    assert payload["submit"] == (
        "eagle campaign submit --device mobile_npu_new_phone_int8 --indices " + ",".join(map(str, payload["indices"]))
    )
    again = _run(capsys, "train", "suggest", "--device", "mobile_npu_new_phone_int8", "--count", "12", "--json")[1]
    assert again["indices"] == payload["indices"]  # deterministic for a seed
    code, _, text = _run(capsys, "train", "suggest", "--device", "x", "--count", "0")
    assert code != 0 and "--count must be positive" in text


ACCURACY_TINY = ["--layers", "2", "--hidden", "16", "--epochs", "4", "--pretrain-epochs", "2"]


def test_train_accuracy_registers_a_device_free_version_scored_on_the_held_out_cells(store, capsys, tmp_path) -> None:
    from latbench.graph import encode_all_nb201
    from predictors import metrics
    from predictors.accuracy import AccuracyPredictor
    from predictors.service import AccuracyOptions, accuracy_training_set

    url, factory = store
    argv = ["train", "accuracy", "--samples", "30", "--seed", "4", "--db", url, *ACCURACY_TINY, "--json"]
    code, payload, _ = _run(capsys, *argv)
    assert code == 0
    assert (payload["device"], payload["kind"], payload["version"], payload["state"]) == (None, "accuracy", 1, "ready")
    assert payload["method"] == "gcn_distilled" and payload["train_count"] == 30
    assert payload["artifact"] == "predictors/_/accuracy/v1"
    # The metrics are those of the saved network on every valid cell outside the 30 drawn ones.
    train, test, acc = accuracy_training_set(AccuracyOptions(samples=30, seed=4))
    with factory() as s:
        row = registry.latest_ready(s, None, "accuracy")
        assert row is not None and sorted(row.train_indices) == sorted(train.tolist())
    m = payload["metrics"]
    assert m["n_test"] == test.size == encode_all_nb201().valid.sum() - 30
    predictor = AccuracyPredictor.load(tmp_path / "workdir" / payload["artifact"])
    enc = encode_all_nb201()
    pred = predictor.predict(enc.adjacency[test], enc.features[test])
    assert m["within_5pct"] == pytest.approx(100 * metrics.within(pred, acc[test], 0.05), abs=1e-3)
    assert m["top1_true_ranks"] == metrics.topk_true_ranks(pred, acc[test], 1).tolist()
    assert len(m["top10_true_ranks"]) == 10
    # The paper's recipe on given models (the ones a lab trained); duplicates count once.
    code, payload, text = _run(
        capsys, "train", "accuracy", "--indices", "3,7,7,42,100,512", "--recipe", "paper", "--db", url, *ACCURACY_TINY
    )
    assert code == 0 and "accuracy version 2 (gcn_paper): ready" in text and "true rank of the predicted best" in text
    with factory() as s:
        row = registry.latest_ready(s, None, "accuracy")
        assert row.version == 2 and sorted(row.train_indices) == [3, 7, 42, 100, 512]
        assert row.hyperparameters["train"]["loss"] == "mse" and row.hyperparameters["distill"] is None


def test_train_accuracy_refuses_bad_models_before_registering(store, capsys) -> None:
    from latbench.graph import encode_all_nb201

    url, factory = store
    invalid = int(np.flatnonzero(~encode_all_nb201().valid)[0])
    cases = {
        f"3,{invalid}": f"cells [{invalid}] have no input->output path",
        "3,15625": "NB201 indices are 0..15624; got [15625]",
        "3,x": "--indices takes comma-separated NB201 indices",
        "3,3": "need at least 3 distinct models",
    }
    for indices, message in cases.items():
        code, payload, _ = _run(capsys, "train", "accuracy", "--indices", indices, "--db", url, "--json")
        assert code == 2 and message in payload["error"], indices
    code, payload, _ = _run(capsys, "train", "accuracy", "--samples", "20000", "--db", url, "--json")
    assert code == 2 and "leaves too few of 15284 valid models" in payload["error"]
    code, payload, _ = _run(capsys, "train", "accuracy", "--pretrain-epochs", "0", "--json")
    assert code == 2 and payload["error"] == "--pretrain-epochs must be positive, got 0"
    with factory() as s:
        assert registry.list_versions(s, kind="accuracy")[0] == 0  # nothing half-registered
