"""``/v1/predict``: predicted latency of NB201 cells on a device, from its newest ready predictor.

``GET /v1/predict?device=D&arch=A`` (A: an index or an arch string) and ``POST /v1/predict`` with
``{"device": D, "archs": [indices or arch strings]}`` answer::

    {"device": D, "kind": "latency", "predictor_version": 3, "predictor": {"id", "version", "method", ...},
     "predictions": [{"index", "arch_str", "valid", "latency_ms", "measured_ms", "reason"?}, ...]}

one prediction per requested arch, in request order. With ``accuracy=true`` (GET) or ``"accuracy": true``
(POST) each prediction also carries ``accuracy``, the predicted CIFAR-100 validation accuracy (percent) from
the newest ready accuracy version (``eagle train accuracy``), described in ``accuracy_predictor``; with none
ready, the answer is 503 saying how to train one. ``latency_ms`` is null for a cell with no
input-to-output path (``valid`` false, with a ``reason``); ``measured_ms`` is the store's newest
measurement, or null. Unknown device: 404 listing the known ones. No ready predictor: 503 saying what is
training and how far it got (also in ``training``), with a Retry-After header. Reads: no API key needed.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from latbench.store.devices import UnknownDevice
from predictors.serving import MAX_ARCHS, AccuracyService, ArchRequestError, NotReady, PredictionService

router = APIRouter(prefix="/predict", tags=["predict"])
RETRY_AFTER_S = 30


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(description="device name, e.g. desktop_gpu_gtx_1080ti_fp32")
    archs: list[StrictInt | StrictStr] = Field(
        min_length=1, max_length=MAX_ARCHS, description="NB201 indices or arch strings (repeats allowed)"
    )
    accuracy: bool = Field(default=False, description="also the predicted CIFAR-100 accuracy of each arch")


class Prediction(BaseModel):
    index: int
    arch_str: str
    valid: bool = Field(description="false: the cell has no input-to-output path")
    latency_ms: float | None = Field(description="predicted latency; null for an invalid cell")
    measured_ms: float | None = Field(description="the store's newest measurement, if any")
    reason: str | None = Field(default=None, description="why latency_ms is null")
    accuracy: float | None = Field(
        default=None, description="with accuracy=true: predicted CIFAR-100 validation accuracy (%); null if invalid"
    )


class PredictorInfo(BaseModel):
    id: int
    version: int
    kind: str
    method: str = Field(description="gcn, few-shot or pretrained")
    created_at: str
    metrics: dict[str, Any] | None = Field(description="on held-out measurements")


class PredictResponse(BaseModel):
    device: str
    kind: str
    predictor_version: int = Field(description="the device's predictor version that answered")
    predictor: PredictorInfo
    predictions: list[Prediction]
    accuracy_predictor: PredictorInfo | None = Field(default=None, description="with accuracy=true: its version")


def service(request: Request) -> PredictionService:
    svc: PredictionService = request.app.state.predictions
    return svc


def answer(request: Request, device: str, archs: list[int | str], accuracy: bool = False) -> JSONResponse:
    try:
        payload = service(request).predict(device, archs)
        if accuracy:
            acc: AccuracyService = request.app.state.accuracy
            indices = np.fromiter((p["index"] for p in payload["predictions"]), dtype=np.int64)  # already resolved
            values, payload["accuracy_predictor"] = acc.predict(indices)
            for item, value in zip(payload["predictions"], values, strict=True):
                item["accuracy"] = value
    except UnknownDevice as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ArchRequestError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"archs: {exc}") from None
    except NotReady as exc:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": str(exc), "training": exc.training},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    # A JSONResponse skips FastAPI's response-model pass: 15,625 predictions serialise in milliseconds.
    return JSONResponse(payload)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown device (the message lists the known ones)"},
    422: {"description": "an arch that is not an NB201 index or arch string"},
    503: {"description": "no ready predictor for the device (or, with accuracy=true, no accuracy predictor) yet"},
}


@router.get("", response_model=PredictResponse, responses=_RESPONSES)
def predict_one(
    request: Request,
    device: Annotated[str, Query(description="device name")],
    arch: Annotated[str, Query(description="NB201 index or arch string")],
    accuracy: Annotated[bool, Query(description="also the predicted CIFAR-100 accuracy")] = False,
) -> JSONResponse:
    return answer(request, device, [arch], accuracy)


@router.post("", response_model=PredictResponse, responses=_RESPONSES)
def predict_many(request: Request, body: PredictRequest) -> JSONResponse:
    return answer(request, body.device, body.archs, body.accuracy)
