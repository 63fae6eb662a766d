"""Agent fixtures: a SQLite store with a device and a token, and the agent service on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.grpc.fixtures import migrated_store, server, token  # noqa: F401 - fixtures, used by name


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with migrated_store(f"sqlite:///{tmp_path / 'eagle.db'}") as sessions:
        yield sessions
