"""Alembic migrations of the LatBench store (run by :func:`latbench.store.db.upgrade`)."""
