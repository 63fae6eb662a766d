"""Alembic environment: migrates the engine handed over by ``latbench.store.db.upgrade``.

Run from code (``upgrade(url)``); there is no ``alembic.ini``. Offline (SQL script) mode is not used.
"""

from __future__ import annotations

from alembic import context

from latbench.store.db import make_engine
from latbench.store.models import Base

config = context.config
engine = config.attributes.get("engine")
owned = engine is None
if engine is None:  # the alembic CLI with sqlalchemy.url set
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: use latbench.store.db.upgrade(url) or set sqlalchemy.url")
    engine = make_engine(url)

try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    if owned:
        engine.dispose()
