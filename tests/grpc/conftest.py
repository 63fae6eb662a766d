"""gRPC fixtures: a migrated store on SQLite and PostgreSQL (``db_url``), a token, a running service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.grpc_service import GrpcServer
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.tokens import create_agent_token

from .helpers import DEVICE, RawAgent, add_device, start_server


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def token(factory: sessionmaker[Session]) -> str:
    add_device(factory, DEVICE)
    with factory() as session:
        return create_agent_token(session, note="grpc tests")


@pytest.fixture
def server(factory: sessionmaker[Session]) -> Iterator[GrpcServer]:
    server = start_server(factory)
    yield server
    server.stop(0).wait(5)


@pytest.fixture
def raw(server: GrpcServer, token: str) -> Iterator[RawAgent]:
    agent = RawAgent(server.port, token)
    agent.register()
    yield agent
    agent.close()
