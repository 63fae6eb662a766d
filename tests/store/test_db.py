"""Engines, URLs and migrations: Alembic's head equals the ORM metadata on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from latbench.store.db import (
    alembic_config,
    current_revision,
    default_db_url,
    make_engine,
    normalize_url,
    upgrade,
)
from latbench.store.models import Base


def _diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(ctx, Base.metadata)


def test_upgrade_head_gives_exactly_the_orm_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert _diff(engine), "an empty database must differ from the metadata (the check is live)"
        upgrade(db_url)
        assert _diff(engine) == []
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert current_revision(engine) == head
        upgrade(engine)  # already at head: a no-op
        assert current_revision(engine) == head
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set(Base.metadata.tables)
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        command.downgrade(alembic_config(engine), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    try:
        with pytest.raises(Exception, match="FOREIGN KEY"), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO agents (id, device_id, hostname, capabilities, registered_at, last_heartbeat, "
                    "state) VALUES ('a', 999, 'h', '[]', '2020-01-01', '2020-01-01', 'online')"
                )
            )
    finally:
        engine.dispose()


def test_default_db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAGLE_DB_URL", "postgresql://u@h/db")
    assert default_db_url() == "postgresql://u@h/db"
    monkeypatch.delenv("EAGLE_DB_URL")
    monkeypatch.chdir(tmp_path)
    url = default_db_url()
    assert url == f"sqlite:///{tmp_path.resolve() / 'var' / 'eagle.db'}"
    assert (tmp_path / "var").is_dir()


def test_normalize_url() -> None:
    assert normalize_url("postgresql://u@h:5432/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        normalize_url("mysql://u@h/d")
    with pytest.raises(ValueError, match="not a database URL"):
        normalize_url("no url at all")
