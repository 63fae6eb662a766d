"""``/v1/predict`` and ``/v1/predictors`` on SQLite and PostgreSQL (TestClient on the app)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latbench.store.archs import architecture_rows
from latbench.store.models import PredictorVersion
from predictors import registry
from predictors.latency import LatencyPredictor
from predictors.serving import INVALID_REASON, PredictionService
from tests._helpers import distinct_valid
from tests.predictors._store_helpers import add_measurements, synthetic_ms

from .conftest import DESKTOP, PHONE, Server, equivalent_pair

INVALID = next(r["index"] for r in architecture_rows() if not r["valid"])


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two tiny trained latency predictors (seeds 1 and 2), saved once for the module."""
    from latbench.graph import encode_all_nb201
    from predictors.gcn import GCNConfig
    from predictors.regressor import TrainConfig

    enc = encode_all_nb201()
    idx = np.array(distinct_valid(80))
    out = {}
    for seed in (1, 2):
        p = LatencyPredictor(GCNConfig(layers=2, hidden=16), TrainConfig(epochs=5, batch_size=16, seed=seed))
        p.fit(enc.adjacency[idx], enc.features[idx], synthetic_ms(idx))
        out[seed] = p.save(tmp_path_factory.mktemp(f"tiny{seed}"))
    return out


@pytest.fixture
def api(server: Server, tmp_path: Path) -> Server:
    """The app with its prediction service on a temporary workdir, checking the registry on every request."""
    server.client.app.state.predictions = PredictionService(server.factory, tmp_path / "workdir", refresh_s=0)
    return server


def ready(server: Server, device: str, artifact: Path, metrics: dict | None = None) -> PredictorVersion:
    with server.factory() as s:
        row = registry.register_version(
            s, device, "latency", method="gcn", train_indices=[1, 2], hyperparameters={"h": 16}, measurement_count=3
        )
        rel = registry.artifact_dir_for(device, "latency", row.version)
        return registry.mark_ready(
            s, row.id, metrics=metrics or {"within_10pct": 50.0}, artifact=rel, artifact_dir=artifact
        )


def test_no_predictor_yet_is_503_with_what_to_do(api: Server) -> None:
    r = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": 5})
    assert r.status_code == 503
    assert f"eagle train latency --device {DESKTOP}" in r.json()["detail"]
    assert r.json()["training"] == []
    with api.factory() as s:
        row = registry.register_version(
            s, DESKTOP, "latency", method="gcn", train_indices=[1], hyperparameters={}, measurement_count=0
        )
        registry.update_progress(s, row.id, {"phase": "training", "epoch": 3, "epochs": 10, "eta_s": 12.5})
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": [5]})
    assert r.status_code == 503 and r.headers["retry-after"] == "30"
    body = r.json()
    assert "training is in progress" in body["detail"] and "epoch 3/10" in body["detail"]
    assert "about 13 s left" in body["detail"]
    assert body["training"][0]["progress"]["epoch"] == 3


def test_unknown_device_is_404_listing_the_known_ones(api: Server) -> None:
    r = api.client.get("/v1/predict", params={"device": "desktop_cpu_nowhere_fp32", "arch": 1})
    assert r.status_code == 404
    assert DESKTOP in r.json()["detail"] and PHONE in r.json()["detail"]
    r = api.client.post("/v1/predict", json={"device": "desktop_cpu_nowhere_fp32", "archs": [1]})
    assert r.status_code == 404


def test_predictions_with_measurements_and_invalid_cells(api: Server, artifacts) -> None:
    row = ready(api, DESKTOP, artifacts[1])
    measured, unmeasured = distinct_valid(2)
    add_measurements(api.factory, DESKTOP, [measured], [4.25])
    arch_str = architecture_rows()[unmeasured]["arch_str"]
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": [measured, arch_str, INVALID, measured]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["device"], body["kind"], body["predictor_version"]) == (DESKTOP, "latency", 1)
    assert body["predictor"]["id"] == row.id and body["predictor"]["method"] == "gcn"
    assert body["predictor"]["metrics"] == {"within_10pct": 50.0}
    p = body["predictions"]
    assert [x["index"] for x in p] == [measured, unmeasured, INVALID, measured]  # request order, repeats kept
    assert p[0]["measured_ms"] == 4.25 and p[1]["measured_ms"] is None
    assert p[1]["arch_str"] == arch_str and p[0]["latency_ms"] > 0 and p[0] == p[3]
    assert p[2]["valid"] is False and p[2]["latency_ms"] is None and p[2]["reason"] == INVALID_REASON
    assert "reason" not in p[0]
    # The served value is the saved predictor's.
    from latbench.graph import encode_all_nb201

    enc = encode_all_nb201()
    expected = LatencyPredictor.load(artifacts[1]).predict(enc.adjacency[[unmeasured]], enc.features[[unmeasured]])
    assert p[1]["latency_ms"] == pytest.approx(float(expected[0]), rel=1e-4)
    # GET by index and by arch string give the same answer.
    by_index = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": str(unmeasured)}).json()
    by_str = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": arch_str}).json()
    assert by_index["predictions"] == by_str["predictions"] == [p[1]]


def test_equivalent_cells_get_one_prediction(api: Server, artifacts) -> None:
    ready(api, DESKTOP, artifacts[1])
    a, b = equivalent_pair()
    p = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": [a, b]}).json()["predictions"]
    assert p[0]["latency_ms"] == p[1]["latency_ms"] and p[0]["arch_str"] != p[1]["arch_str"]


def test_bad_requests_name_the_problem(api: Server, artifacts) -> None:
    ready(api, DESKTOP, artifacts[1])
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": [1, 15625, "|bogus|", -3]})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "archs[1]" in detail and "archs[2]" in detail and "archs[3]" in detail and "archs[0]" not in detail
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": []})
    assert r.status_code == 422 and "archs" in r.json()["detail"]
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": [1], "arch": 2})
    assert r.status_code == 422 and "arch" in r.json()["detail"]
    r = api.client.get("/v1/predict", params={"device": DESKTOP})
    assert r.status_code == 422 and "arch (query)" in r.json()["detail"]
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": [True]})
    assert r.status_code == 422


def test_whole_space_in_one_request_keeps_the_search_contract(api: Server, artifacts) -> None:
    """What search.latency.RestLatency relies on: every index once, null exactly for invalid cells."""
    ready(api, DESKTOP, artifacts[1])
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": list(range(15625))})
    assert r.status_code == 200
    p = r.json()["predictions"]
    assert [x["index"] for x in p] == list(range(15625))
    valid = np.array([row["valid"] for row in architecture_rows()])
    got = np.array([x["latency_ms"] is not None for x in p])
    assert np.array_equal(got, valid)
    assert all(x["latency_ms"] > 0 for x in p if x["latency_ms"] is not None)


def test_a_newer_ready_version_is_served(api: Server, artifacts) -> None:
    ready(api, DESKTOP, artifacts[1])
    arch = distinct_valid(1, skip=5)[0]
    first = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": arch}).json()
    with api.factory() as s:  # a version in training does not replace the ready one
        registry.register_version(
            s, DESKTOP, "latency", method="gcn", train_indices=[1], hyperparameters={}, measurement_count=0
        )
    assert api.client.get("/v1/predict", params={"device": DESKTOP, "arch": arch}).json()["predictor_version"] == 1
    ready(api, DESKTOP, artifacts[2])
    second = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": arch}).json()
    assert second["predictor_version"] == 3
    assert second["predictions"][0]["latency_ms"] != first["predictions"][0]["latency_ms"]


def test_predictors_listing(api: Server, artifacts) -> None:
    v1 = ready(api, DESKTOP, artifacts[1], metrics={"spearman": 0.9})
    v2 = ready(api, DESKTOP, artifacts[2], metrics={"spearman": 0.95})
    phone = ready(api, PHONE, artifacts[1])
    with api.factory() as s:
        training = registry.register_version(
            s, DESKTOP, "latency", method="gcn", train_indices=[7, 8, 9], hyperparameters={}, measurement_count=5
        )
        registry.update_progress(s, training.id, {"phase": "training", "epoch": 2, "epochs": 9})
    r = api.client.get("/v1/predictors", params={"device": DESKTOP})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 3
    by_id = {item["id"]: item for item in body["items"]}
    assert [item["id"] for item in body["items"]] == [training.id, v2.id, v1.id]  # newest first
    assert by_id[v2.id]["serving"] and not by_id[v1.id]["serving"] and not by_id[training.id]["serving"]
    assert by_id[v2.id]["metrics"] == {"spearman": 0.95} and by_id[v2.id]["artifact_files"] == 2
    assert by_id[training.id]["state"] == "training" and by_id[training.id]["progress"]["epoch"] == 2
    everything = api.client.get("/v1/predictors").json()
    assert everything["total"] == 4 and {i["device"] for i in everything["items"]} == {DESKTOP, PHONE}
    assert next(i for i in everything["items"] if i["id"] == phone.id)["serving"]
    assert api.client.get("/v1/predictors", params={"state": "training"}).json()["total"] == 1
    detail = api.client.get(f"/v1/predictors/{training.id}").json()
    assert detail["train_indices"] == [7, 8, 9] and detail["train_count"] == 3
    assert api.client.get("/v1/predictors/999999").status_code == 404
    assert api.client.get("/v1/predictors", params={"device": "desktop_cpu_nowhere_fp32"}).status_code == 404
    r = api.client.get("/v1/predictors", params={"kind": "speed"})
    assert r.status_code == 422 and "unknown predictor kind" in r.json()["detail"]


def test_refresher_swaps_in_new_versions_and_measurements_off_the_request_path(
    api: Server, artifacts, tmp_path
) -> None:
    import time

    ready(api, DESKTOP, artifacts[1])
    service = PredictionService(api.factory, tmp_path / "refresh", refresh_s=0.05)
    arch = distinct_valid(1, skip=9)[0]
    assert service.predict(DESKTOP, [arch])["predictor_version"] == 1
    service.start_refresher()
    try:
        ready(api, DESKTOP, artifacts[2])
        add_measurements(api.factory, DESKTOP, [arch], [7.5])
        deadline = time.monotonic() + 60
        while service.cached_version(DESKTOP) != 2 or np.isnan(service.measured(DESKTOP)[arch]):
            assert time.monotonic() < deadline, "the refresher did not pick up version 2 and the measurement"
            time.sleep(0.05)
        answer = service.predict(DESKTOP, [arch])
        assert answer["predictor_version"] == 2 and answer["predictions"][0]["measured_ms"] == 7.5
    finally:
        service.stop_refresher()
    assert service._refresher is None


def _ready_accuracy(server: Server, folder: Path, seed: int) -> np.ndarray:
    """Register a tiny accuracy version ready; its predicted accuracy of every NB201 cell."""
    from latbench.data import BRP_SEED, load_accuracy
    from latbench.graph import encode_all_nb201
    from predictors.accuracy import AccuracyPredictor
    from predictors.gcn import GCNConfig
    from predictors.regressor import TrainConfig

    enc = encode_all_nb201()
    idx = np.array(distinct_valid(40))
    acc = np.asarray(load_accuracy().column("cifar100", "valid", BRP_SEED), dtype=np.float64)[idx]
    p = AccuracyPredictor(GCNConfig(layers=2, hidden=8), TrainConfig(target="standard", epochs=3, seed=seed))
    p.fit(enc.adjacency[idx], enc.features[idx], acc)
    artifact = p.save(folder / f"accuracy{seed}")
    with server.factory() as s:
        row = registry.register_version(
            s,
            None,
            "accuracy",
            method="gcn_robust",
            train_indices=idx.tolist(),
            hyperparameters={},
            measurement_count=40,
        )
        rel = registry.artifact_dir_for(None, "accuracy", row.version)
        registry.mark_ready(s, row.id, metrics={"within_5pct": 1.0}, artifact=rel, artifact_dir=artifact)
    return p.predict_nb201()


def test_predicted_accuracy_on_request_from_the_newest_accuracy_version(api: Server, artifacts, tmp_path) -> None:
    from predictors.serving import AccuracyService

    api.client.app.state.accuracy = AccuracyService(api.factory, tmp_path / "workdir", refresh_s=0)
    ready(api, DESKTOP, artifacts[1])
    plain = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": 5})
    assert plain.status_code == 200 and "accuracy" not in plain.json()["predictions"][0]
    r = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": 5, "accuracy": "true"})
    assert r.status_code == 503 and "no accuracy predictor is ready: run `eagle train accuracy`" in r.json()["detail"]

    first = _ready_accuracy(api, tmp_path, seed=1)
    r = api.client.post("/v1/predict", json={"device": DESKTOP, "archs": [5, INVALID, 5], "accuracy": True})
    assert r.status_code == 200
    body = r.json()
    assert body["accuracy_predictor"]["version"] == 1 and body["accuracy_predictor"]["kind"] == "accuracy"
    values = [p["accuracy"] for p in body["predictions"]]
    assert values[0] == values[2] == pytest.approx(first[5], abs=1e-3) and values[1] is None
    assert body["predictions"][0]["latency_ms"] is not None  # the latency answer is unchanged beside it

    second = _ready_accuracy(api, tmp_path, seed=2)
    assert abs(second[5] - first[5]) > 1e-3  # a different network: the test can tell the versions apart
    r = api.client.get("/v1/predict", params={"device": DESKTOP, "arch": 5, "accuracy": "true"})
    assert r.json()["accuracy_predictor"]["version"] == 2
    assert r.json()["predictions"][0]["accuracy"] == pytest.approx(second[5], abs=1e-3)
