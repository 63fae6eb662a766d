"""FastAPI dependencies: a database session per request and the API key that guards REST writes.

The app keeps its session factory and key on ``app.state`` (set by :func:`eagle_server.app.create_app`),
so tests can build an app on any database without touching globals.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.client import API_KEY_HEADER
from eagle_server.settings import Settings

# auto_error=False: we answer a missing key ourselves, with a message that says which header to send.
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="the server's API key")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; whatever it left open is rolled back when the request ends."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        yield session


def require_api_key(request: Request, key: Annotated[str | None, Depends(_api_key_header)]) -> None:
    expected: str | None = request.app.state.api_key
    if expected is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "this server has no API key configured, so it accepts no writes; set EAGLE_API_KEY and restart",
        )
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"this endpoint changes data: send the server's API key in the {API_KEY_HEADER} header",
        )
    # Constant-time comparison: the key must not leak through response timing.
    if not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"wrong API key in the {API_KEY_HEADER} header")


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ApiKeyDep = Annotated[None, Depends(require_api_key)]
