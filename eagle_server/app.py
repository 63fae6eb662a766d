"""The REST API: ``create_app(settings)`` builds the FastAPI app, one router per resource under ``/v1``.

Reads are open; writes need the server's API key in ``X-API-Key``. Every error is JSON
``{"detail": "<message>"}`` with a message a person can act on: request-validation errors, which FastAPI
reports as a list, are rendered here as one line naming each bad field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.routers import agents, campaigns, devices, health, latbench, measurements, predict, predictors
from eagle_server.settings import Settings
from latbench import __version__
from latbench.store.db import open_store
from predictors.serving import AccuracyService, PredictionService

API_PREFIX = "/v1"


def _where(loc: tuple[Any, ...]) -> str:
    """``("body", "protocol", "runs")`` -> ``protocol.runs``; ``("query", "limit")`` -> ``limit (query)``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header"):
        return f"{'.'.join(parts[1:])} ({parts[0]})"
    if parts and parts[0] == "body":
        parts = parts[1:]
    # Drop the tag pydantic adds inside tagged unions ("models.indices.indices" -> "models.indices").
    cleaned = [p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1]]
    return ".".join(cleaned) or "body"


def validation_message(exc: RequestValidationError) -> str:
    seen: list[str] = []
    for error in exc.errors():
        if error.get("type") == "missing" and error.get("loc") == ("body",):
            line = "the request needs a JSON body"
        else:
            line = f"{_where(tuple(error.get('loc', ())))}: {error.get('msg', 'invalid')}"
        if line not in seen:
            seen.append(line)
    return "invalid request: " + "; ".join(seen)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": validation_message(exc)})


def database_url(settings: Settings) -> str:
    """``settings.db_url``, else a SQLite file ``<workdir>/eagle.db``."""
    if settings.db_url:
        return settings.db_url
    path = (Path(settings.workdir) / "eagle.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def create_app(settings: Settings, session_factory: sessionmaker[Session] | None = None) -> FastAPI:
    """The app on ``session_factory`` (default: the store of :func:`database_url`, migrated on the spot).

    Without an API key (``settings.api_key``) the app accepts no writes at all; ``eagle serve``
    always provides one.
    """
    if session_factory is None:
        session_factory = open_store(database_url(settings))
    # Predictions: the newest ready predictor per device, artifacts materialised under the workdir.
    predictions = PredictionService(session_factory, Path(settings.workdir))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        predictions.start_refresher()  # requests then never wait for the registry
        try:
            yield
        finally:
            predictions.stop_refresher()

    app = FastAPI(
        title="Eagle",
        version=__version__,
        description="Latency measurement and prediction: LatBench store, NB201 campaigns, agents, predictors.",
        docs_url="/docs",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory
    app.state.api_key = settings.api_key or None
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.state.predictions = predictions
    app.state.accuracy = AccuracyService(session_factory, Path(settings.workdir))
    for module in (health, devices, agents, campaigns, measurements, latbench, predict, predictors):
        app.include_router(module.router, prefix=API_PREFIX)
    return app
