"""``eagle latbench export|import``: LatBench CSV releases out of and into the server (REST client).

``export --out FILE`` writes the CSV to FILE and its JSON sidecar to FILE.json; ``import FILE`` sends
FILE (and FILE.json when it is there, or ``--sidecar``) and the server writes every row or none.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eagle_server.cli import add_client_options, client_for, subcommands
from latbench.cli import CLIError, emit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("latbench", help="export or import LatBench CSV releases (REST client)")
    commands = subcommands(parser, "latbench")

    export = commands.add_parser("export", help="download a release: FILE (CSV) and FILE.json (sidecar)")
    export.add_argument("--out", required=True, metavar="FILE", help="CSV file to write")
    export.add_argument("--devices", nargs="+", metavar="DEVICE", help="devices to export (default: all measured)")
    export.add_argument("--version", dest="release_version", help="release version (default: date and time)")
    add_client_options(export)
    export.set_defaults(func=run_export)

    imp = commands.add_parser("import", help="upload a release CSV (all rows or none)")
    imp.add_argument("file", metavar="FILE", help="release CSV (plain or .gz)")
    imp.add_argument("--sidecar", metavar="JSON", help="its sidecar (default: FILE.json when it exists)")
    imp.add_argument("--provenance", help='recorded with each measurement (default: "release <version>")')
    add_client_options(imp)
    imp.set_defaults(func=run_import)


def sidecar_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + ".json")


def run_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CLIError(f"--out: folder {out.parent} does not exist")
    devices = [d for item in args.devices or [] for d in item.split(",") if d]
    with client_for(args) as client:
        if args.json:
            sidecar = client.export_release(out, devices or None, args.release_version)
        else:
            sidecar = _export_with_bar(client, out, devices or None, args.release_version)
    side = sidecar_path(out)
    side.write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    counts = sidecar.get("counts", {})
    payload = {
        "csv": str(out),
        "sidecar": str(side),
        "version": sidecar.get("version"),
        "devices": [d["name"] for d in sidecar.get("devices", [])],
        "cells": counts.get("cells"),
        "measured_cells": counts.get("measured_cells"),
        "filled_cells": counts.get("filled_cells"),
        "sha256": sidecar.get("csv", {}).get("sha256"),
    }
    emit(payload, args.json, _describe_export)
    return 0


def _export_with_bar(client: Any, out: Path, devices: list[str] | None, version: str | None) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("export", total=None)

        def on_bytes(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return dict(client.export_release(out, devices, version, on_bytes=on_bytes))


def _describe_export(p: dict[str, Any]) -> str:
    return (
        f"release {p['version']}: {len(p['devices'])} device(s), {p['cells']} cells "
        f"({p['measured_cells']} measured, {p['filled_cells']} filled from equivalent cells)\n"
        f"  {p['csv']}\n  {p['sidecar']}"
    )


def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CLIError(f"{path}: no such file")
    side: Path | None
    if args.sidecar:
        side = Path(args.sidecar)
        if not side.is_file():
            raise CLIError(f"--sidecar {side}: no such file")
    else:
        side = sidecar_path(path) if sidecar_path(path).is_file() else None
    with client_for(args) as client:
        summary = client.import_release(path, side, args.provenance)
    emit(
        summary,
        args.json,
        lambda s: (
            f"imported {s['inserted']} measurement(s) as {s['provenance']!r} "
            f"({s.get('unchanged', 0)} unchanged, {s.get('skipped_filled', 0)} filled cells skipped)"
        ),
    )
    return 0
