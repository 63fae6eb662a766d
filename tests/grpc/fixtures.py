"""Fixtures shared by the gRPC and agent tests: a migrated store, an agent token, a running service, a
raw registered agent.

Each suite's conftest imports the fixtures it uses and defines its own ``factory`` (the store they run
on) with :func:`migrated_store`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.grpc_service import GrpcServer
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.tokens import create_agent_token

from .helpers import DEVICE, RawAgent, add_device, start_server


@contextmanager
def migrated_store(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the database at ``url``, upgraded to the latest schema; the engine disposed after."""
    engine = make_engine(url)
    upgrade(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def token(factory: sessionmaker[Session]) -> str:
    """An agent token, with the test device registered."""
    add_device(factory, DEVICE)
    with factory() as session:
        return create_agent_token(session, note="tests")


@pytest.fixture
def server(factory: sessionmaker[Session]) -> Iterator[GrpcServer]:
    """The agent service on a free loopback port, with short lease and poll times."""
    server = start_server(factory)
    yield server
    server.stop(0).wait(5)


@pytest.fixture
def raw(server: GrpcServer, token: str) -> Iterator[RawAgent]:
    """A registered agent speaking the raw gRPC stubs."""
    agent = RawAgent(server.port, token)
    agent.register()
    yield agent
    agent.close()
