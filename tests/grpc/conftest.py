"""gRPC fixtures: a migrated store on SQLite and PostgreSQL (``db_url``), a token, a running service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from .fixtures import migrated_store, raw, server, token  # noqa: F401 - fixtures, used by name


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_store(db_url) as sessions:
        yield sessions
