"""Shared fixtures. ``db_url``: a fresh, empty database on SQLite and on PostgreSQL.

PostgreSQL is expected at 127.0.0.1:5432, user postgres, trust auth (``.ci/run`` starts it); override
with ``EAGLE_TEST_PG_ADMIN`` (a libpq URL of a database to connect to for CREATE/DROP DATABASE).
Tests that use ``db_url`` fail, rather than skip, when PostgreSQL does not answer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'eagle.db'}"
        return
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    admin = os.environ.get("EAGLE_TEST_PG_ADMIN", PG_ADMIN_DEFAULT)
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL does not answer at {admin} ({exc}). The store tests run on PostgreSQL too: start "
            "it (CI's .ci/run does) or set EAGLE_TEST_PG_ADMIN.",
            pytrace=False,
        )
    name = f"eagle_test_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            params = conninfo_to_dict(admin)
            user, host = params.get("user", ""), params.get("host", "127.0.0.1")
            port, password = params.get("port", "5432"), params.get("password")
            auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
            yield f"postgresql+psycopg://{auth}{host}:{port}/{name}"
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _fresh_server_settings() -> Iterator[None]:
    """Each test reads EAGLE_* anew: ``get_settings`` caches for a process's life, and CLI entry points
    called in-process by one test must not see the settings an earlier test's environment made."""
    from eagle_server.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
