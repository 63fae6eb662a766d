"""search.latency: every source answers the same interface; REST against a tiny app of the contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel

from latbench.data import load_latency
from search.latency import (
    ArrayLatency,
    LatencySource,
    LatencySourceError,
    PredictorLatency,
    RestLatency,
    TableLatency,
)
from search.space import nb201_space

DEVICE = "desktop_gpu_gtx_1080ti_fp32"
SPACE = nb201_space()
INVALID = int(np.flatnonzero(~SPACE.valid)[0])


def fake_ms(index: int) -> float:
    return 1.0 + index / 1000.0


# -- a tiny server implementing the batch prediction contract -----------------------------------------
class PredictRequest(BaseModel):
    device: str
    archs: list[int]


def make_app(requests: list[list[int]], broken: str | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        requests.append(body.archs)
        if body.device != DEVICE:
            raise HTTPException(404, detail=f"no latency predictor for device {body.device!r}")
        predictions = [
            {"index": i, "latency_ms": fake_ms(i) if SPACE.valid[i] else None, "valid": bool(SPACE.valid[i])}
            for i in body.archs
        ]
        if broken == "missing":
            predictions = predictions[1:]
        elif broken == "negative":
            predictions[0]["latency_ms"] = -1.0
        elif broken == "extra":
            predictions.append({"index": 15_000, "latency_ms": 1.0, "valid": True})
        return {"predictions": predictions, "predictor_version": "test-1"}

    return app


def rest(requests: list[list[int]], broken: str | None = None, **kwargs: Any) -> RestLatency:
    client = TestClient(make_app(requests, broken))
    return RestLatency("http://testserver", kwargs.pop("device", DEVICE), client=client, **kwargs)


def test_rest_scores_many_candidates_in_one_request() -> None:
    requests: list[list[int]] = []
    source = rest(requests)
    assert isinstance(source, LatencySource)
    indices = np.concatenate([SPACE.valid_indices[:3000], [INVALID]])
    values = source.latency_ms(indices)
    assert len(requests) == 1 and len(requests[0]) == 3000  # invalid cells are never sent
    np.testing.assert_allclose(values[:-1], [fake_ms(i) for i in indices[:-1]])
    assert np.isnan(values[-1])
    assert source.predictor_version == "test-1"
    again = source.latency_ms(indices[:10])  # answered from the memo: no new request
    assert len(requests) == 1
    np.testing.assert_allclose(again, values[:10])


def test_rest_batches_by_batch_size() -> None:
    requests: list[list[int]] = []
    source = rest(requests, batch_size=400)
    source.latency_ms(SPACE.valid_indices[:1000])
    assert [len(r) for r in requests] == [400, 400, 200]
    assert source.requests == 3


@pytest.mark.parametrize(
    ("broken", "message"),
    [("missing", "no prediction for 1"), ("negative", "not a positive number"), ("extra", "not asked")],
)
def test_rest_rejects_malformed_replies(broken: str, message: str) -> None:
    with pytest.raises(LatencySourceError, match=message):
        rest([], broken).latency_ms(SPACE.valid_indices[:5])


def test_rest_reports_server_errors_and_unreachable_servers() -> None:
    with pytest.raises(LatencySourceError, match="404: no latency predictor for device 'nope'"):
        rest([], device="nope").latency_ms([1])
    unreachable = RestLatency("http://127.0.0.1:9", DEVICE, timeout_s=2.0)
    with pytest.raises(LatencySourceError, match="cannot reach"):
        unreachable.latency_ms([1])


def test_rest_sends_the_api_key() -> None:
    seen: list[str | None] = []
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(body: PredictRequest, x_api_key: str | None = None) -> dict[str, Any]:
        return {"predictions": [{"index": i, "latency_ms": 1.0, "valid": True} for i in body.archs]}

    @app.middleware("http")
    async def grab(request: Any, call_next: Any) -> Any:
        seen.append(request.headers.get("x-api-key"))
        return await call_next(request)

    RestLatency("http://testserver", DEVICE, client=TestClient(app), api_key="k123").latency_ms([1])
    assert seen == ["k123"]


def test_table_latency_is_the_shipped_measurement() -> None:
    source = TableLatency(DEVICE)
    column = load_latency().column(DEVICE)
    np.testing.assert_array_equal(source.latency_ms([0, 9930]), column[[0, 9930]])
    assert np.isnan(source.latency_ms([INVALID])[0])
    with pytest.raises(LatencySourceError, match="unknown device"):
        TableLatency("desktop_gpu_nope_fp32")


class CountingPredictor:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict(self, adjacency: np.ndarray, features: np.ndarray) -> np.ndarray:
        self.batches.append(adjacency.shape[0])
        return 1.0 + adjacency.sum(axis=(1, 2)) + features.sum(axis=(1, 2))


def test_predictor_latency_feeds_encodings_once_per_index() -> None:
    predictor = CountingPredictor()
    source = PredictorLatency(predictor)
    indices = np.array([5, 9930, INVALID, 5, 77])
    values = source.latency_ms(indices)
    assert predictor.batches == [3]  # unique valid indices only, one batch
    enc = SPACE.encodings
    expected = 1.0 + enc.adjacency[9930].sum() + enc.features[9930].sum()
    assert values[1] == pytest.approx(expected)
    assert values[0] == values[3] and np.isnan(values[2])
    source.latency_ms([5, 77, 9930])
    assert predictor.batches == [3]
    with pytest.raises(TypeError, match="predict"):
        PredictorLatency(object())


def test_array_latency_checks_its_input() -> None:
    with pytest.raises(ValueError, match="one latency per NB201 index"):
        ArrayLatency(np.ones(10))
    with pytest.raises(ValueError, match="positive"):
        ArrayLatency(np.zeros(SPACE.size))
    source = ArrayLatency(np.arange(1, SPACE.size + 1, dtype=float))
    np.testing.assert_array_equal(source.latency_ms([0, 2]), [1.0, 3.0])


def test_store_latency_reads_the_newest_measurement(tmp_path: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from latbench.store import Measurement, open_store
    from latbench.store.archs import ensure_architectures
    from latbench.store.devices import ensure_device
    from search.latency import StoreLatency

    factory = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with factory() as session:
        ensure_architectures(session)
        device = ensure_device(session, DEVICE)
        ensure_device(session, "desktop_cpu_other_fp32")
        for index, latency, minutes in ((9930, 4.0, 0), (9930, 3.5, 5), (7, 2.0, 1)):
            session.add(
                Measurement(
                    device_id=device.id,
                    arch_index=index,
                    canonical_key="k",
                    latency_ms=latency,
                    provenance="test",
                    measured_at=t0 + timedelta(minutes=minutes),
                )
            )
        session.commit()
    source = StoreLatency(factory, DEVICE)
    values = source.latency_ms([9930, 7, 8])
    assert values[0] == 3.5 and values[1] == 2.0 and np.isnan(values[2])
    with pytest.raises(LatencySourceError, match="not in the store; known devices: desktop_cpu_other_fp32"):
        StoreLatency(factory, "desktop_gpu_nope_fp32")
