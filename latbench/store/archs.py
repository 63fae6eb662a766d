"""The ``architectures`` table: every NB201 cell with its canonical graph key, filled on first use."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from latbench import nb201
from latbench.graph import nb201_cell
from latbench.store.models import Architecture

_ROWS_LOCK = threading.Lock()


def architecture_rows() -> tuple[dict[str, Any], ...]:
    """One row per NB201 index (index order); about half a second to compute, then cached.

    The first call is serialised: a server's threads all asking at once (the first leases) would each
    compute the table, contending for the arch objects' cached-property lock (minutes of CPU for 50).
    """
    if _computed_rows.cache_info().currsize:
        return _computed_rows()
    with _ROWS_LOCK:
        return _computed_rows()


@cache
def _computed_rows() -> tuple[dict[str, Any], ...]:
    rows = []
    for index, code in enumerate(nb201.op_codes_by_index()):
        arch = nb201.Arch.from_op_code(code)
        cell = nb201_cell(arch)
        rows.append(
            {
                "index": index,
                "arch_str": arch.arch_str,
                "op_code": code,
                "canonical_key": cell.canonical_key,
                "valid": cell.valid,
            }
        )
    return tuple(rows)


def ensure_architectures(session: Session) -> None:
    """Insert the NB201 cells if the table is not complete (does not commit).

    Safe when two writers race: rows already there are skipped (``ON CONFLICT DO NOTHING``).
    """
    have = session.scalar(select(func.count()).select_from(Architecture))
    if have == nb201.NUM_ARCHS:
        return
    rows = [{"arch_index": r["index"], **{k: v for k, v in r.items() if k != "index"}} for r in architecture_rows()]
    table = cast(Table, Architecture.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=["arch_index"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["arch_index"])
    else:  # pragma: no cover - make_engine only builds the two above
        stmt = insert(table)
    session.execute(stmt, rows)


def canonical_keys() -> list[str]:
    """Canonical key of every NB201 index (index order)."""
    return [row["canonical_key"] for row in architecture_rows()]


def valid_mask() -> list[bool]:
    return [bool(row["valid"]) for row in architecture_rows()]
