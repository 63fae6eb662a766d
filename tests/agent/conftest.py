"""Agent fixtures: a SQLite store with a device and a token, and the agent service on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.grpc_service import GrpcServer
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.tokens import create_agent_token
from tests.grpc.helpers import DEVICE, add_device, start_server


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'eagle.db'}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def token(factory: sessionmaker[Session]) -> str:
    add_device(factory, DEVICE)
    with factory() as session:
        return create_agent_token(session, note="agent tests")


@pytest.fixture
def server(factory: sessionmaker[Session]) -> Iterator[GrpcServer]:
    server = start_server(factory)
    yield server
    server.stop(0).wait(5)
