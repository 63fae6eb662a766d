"""Helpers shared by several test packages (server, predictors, e2e)."""

from __future__ import annotations

from latbench.store.archs import architecture_rows


def distinct_valid(n: int, skip: int = 0) -> list[int]:
    """The first ``n`` valid NB201 indices (after ``skip`` of them) whose pruned graphs all differ,
    so that deduplication by canonical graph keeps every one."""
    seen: set[str] = set()
    out: list[int] = []
    for row in architecture_rows():
        if row["valid"] and row["canonical_key"] not in seen:
            seen.add(row["canonical_key"])
            out.append(row["index"])
    return out[skip : skip + n]
