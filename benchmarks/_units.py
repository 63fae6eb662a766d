"""Resumable benchmark units, shared by the benchmark scripts (imported as ``_units``: run them as scripts).

A unit is one JSON file under ``results/<name>/``, written atomically as soon as it finishes, so an
interrupted run resumes where it stopped; the summary (``<name>.json`` and ``<name>.md``) aggregates
whatever units exist.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Unit = dict[str, Any]


def run_units(units: Iterable[tuple[Path, Callable[[], Unit]]], describe: Callable[[Unit], str]) -> None:
    """Compute each (path, compute) unit whose file does not exist yet, in order; print ``describe(unit)``."""
    for path, compute in units:
        if path.exists():
            continue
        unit = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(unit, indent=2) + "\n")
        tmp.replace(path)  # atomic: an interrupted run leaves no half-written unit
        print(describe(unit), flush=True)


def save_summary(
    results: Path, name: str, summary: dict[str, Any], markdown: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """Write ``results/<name>.json`` and ``results/<name>.md``; returns ``summary``."""
    (results / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (results / f"{name}.md").write_text(markdown(summary))
    return summary


def add_unit_args(parser: argparse.ArgumentParser, results: Path, seeds: str = "0,1,2") -> None:
    """The options every resumable benchmark has: ``--seeds``, ``--results`` and ``--summary``."""
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument("--results", type=Path, default=results)
    parser.add_argument("--summary", action="store_true", help="only aggregate the existing units")


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a range ``0-4`` (both ends included) or a list ``0,2,5``."""
    if "-" in text:
        lo, hi = text.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]
