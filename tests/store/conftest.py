"""Store fixtures: a migrated database (SQLite and PostgreSQL), sessions, a device, an agent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from latbench.store import queue
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.devices import ensure_device
from latbench.store.tokens import create_agent_token

DEVICE = "desktop_cpu_test_box_fp32"
CAPS = ("litert:fp32", "tf:fp32")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


@pytest.fixture
def device(session: Session) -> str:
    ensure_device(session, DEVICE, hardware="test box")
    session.commit()
    return DEVICE


@pytest.fixture
def token(session: Session) -> str:
    return create_agent_token(session, note="tests")


@pytest.fixture
def agent(session: Session, device: str, token: str) -> str:
    return queue.register_agent(session, token, device, "host-a", list(CAPS), {"ok": True})
