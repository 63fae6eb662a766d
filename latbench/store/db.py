"""Engines, sessions and schema migrations for the LatBench store.

SQLite (the default, one file) and PostgreSQL (``postgresql+psycopg://``; a plain ``postgresql://``
URL is taken to mean psycopg 3) are both supported.

SQLite notes: WAL journal (readers do not block the writer), ``foreign_keys=ON``, a 30 s busy
timeout. The sqlite3 module's own transaction handling is switched off so that we emit BEGIN
ourselves: a session procured with :func:`write_session_options` starts with ``BEGIN IMMEDIATE``,
which takes the write lock up front. Read-then-write transactions (the job queue's) therefore
serialise instead of failing with "database is locked" when two of them try to upgrade at once.

Migrations ship inside the package (``latbench/store/migrations``) and are run programmatically by
:func:`upgrade`, so an installed wheel can migrate its database without an ``alembic.ini``.
"""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

DB_URL_ENV = "EAGLE_DB_URL"
DEFAULT_SQLITE_FILE = Path("var") / "eagle.db"
SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option that makes the next SQLite transaction BEGIN IMMEDIATE (see the module docstring).
WRITE_OPTION = "eagle_write"
PING_IDLE_S = 10.0  # a pooled PostgreSQL connection idle this long is pinged before use


def default_db_url() -> str:
    """``$EAGLE_DB_URL``, else a SQLite file ``./var/eagle.db`` under the working directory."""
    url = os.environ.get(DB_URL_ENV, "").strip()
    if url:
        return url
    path = DEFAULT_SQLITE_FILE.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; ``postgresql://`` (no driver) means psycopg 3."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError for garbage
        raise ValueError(f"not a database URL: {url!s}: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine configured for the store (see the module docstring for SQLite's settings)."""
    parsed = normalize_url(url)
    ping_idle_s = float(kwargs.pop("ping_idle_s", PING_IDLE_S))
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    # Keep as many idle connections as the server has concurrent calls (64 gRPC workers): a smaller
    # pool closes its overflow connections on return and reopens them under load, and a PostgreSQL
    # connection costs milliseconds to open (benchmarks/queue_throughput.py).
    kwargs.setdefault("pool_size", 64)
    kwargs.setdefault("max_overflow", 16)
    engine = create_engine(parsed, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine, ping_idle_s)
    return engine


def _ping_idle_connections(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection on checkout only when it sat idle for ``idle_s`` (a dead one is replaced).

    ``pool_pre_ping`` pings on every checkout: a round trip per call, a sixth of the queue's per-job
    work. A busy connection is known alive; one that breaks anyway fails its call once, and SQLAlchemy
    then drops the whole pool (a database restart is noticed on the first error).
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["eagle_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("eagle_idle_since")
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:  # the pool retries the checkout with a new connection
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (the queue functions commit themselves)."""
    return sessionmaker(engine, expire_on_commit=False)


def begin_write(session: Session) -> None:
    """Start the session's next transaction as a writer (``BEGIN IMMEDIATE`` on SQLite).

    Whatever the session had open is committed first: the queue functions own their transactions.
    """
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={WRITE_OPTION: True})


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# -- migrations ------------------------------------------------------------------------------------
def alembic_config(engine: Engine | None = None) -> Any:
    """An Alembic ``Config`` pointing at the migrations shipped in this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("latbench.store") / "migrations"))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(url: str | URL | Engine, revision: str = "head") -> None:
    """Migrate the database at ``url`` (or behind an engine) to ``revision`` (default: the latest)."""
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        command.upgrade(alembic_config(engine), revision)
    finally:
        if engine is not url:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_store(url: str | URL | None = None, migrate: bool = True) -> sessionmaker[Session]:
    """Engine + migrations + session factory: what a server needs on start."""
    engine = make_engine(url or default_db_url())
    if migrate:
        upgrade(engine)
    return session_factory(engine)
