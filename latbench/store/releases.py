"""LatBench CSV releases: import the shipped 2020 release, export and import releases.

The CSV layout is the shipped ``latbench_latency.csv.gz``: header
``arch_index,arch_str,op_code,<device>_ms,...`` (device columns in name order), one row per NB201
index in index order, latencies in milliseconds written as Python writes ``round(value, 6)``
(``3.896706``, ``16.804``, ``4.0``), an empty cell where there is no latency, ``\\n`` line ends.

A JSON sidecar travels with each export: release version and date, the devices with their hardware
and runtime facts, the protocol parameters behind the numbers, counts, provenance, and the cells that
were *filled*: equivalent cells (same canonical pruned graph) are measured once and, in the release,
the others are filled from the lowest-index measured cell with the same key.

Which measurement a cell shows: the most recently recorded one for that device and architecture.

Import rules (:func:`import_release`):

* Every row is checked: ``arch_index`` in 0..15624 and ``arch_str`` / ``op_code`` agreeing with it,
  no index twice, the right number of fields, every latency positive and finite, no latency for an
  invalid cell. Errors name the line and column (up to 20 are listed at once).
* A device column the store does not know is an error naming it, unless the sidecar passed along
  describes that device (an entry of ``sidecar["devices"]``): then the device is created from it.
* Cells the sidecar lists as filled (and whose value equals their source's) are not stored: they
  are not measurements, and exporting again fills them the same way.
* A cell whose current value already equals the imported one is skipped, so importing the same
  release twice adds nothing. Everything is written in one transaction, or nothing is.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, TextIO, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from latbench import __version__, nb201
from latbench.store.archs import architecture_rows, ensure_architectures
from latbench.store.db import begin_write
from latbench.store.devices import (
    DEVICE_NAME_RE,
    check_device_name,
    ensure_device,
    latbench_2020_devices,
)
from latbench.store.models import Campaign, Device, Measurement, Release, utcnow

PROVENANCE_LATBENCH_2020 = "LatBench 2020"
SHIPPED_CSV = "latbench_latency.csv.gz"
FIXED_COLUMNS = ("arch_index", "arch_str", "op_code")
SIDECAR_FORMAT = "latbench-release/1"
MAX_LISTED_ERRORS = 20
# The paper's protocol (§6): desktop/embedded 1000 runs, phones 10, groups of 10, IQR means twice.
PAPER_PROTOCOL_NOTE = "BRP-NAS §6: batch 1, groups of 10, interquartile mean within and across groups"


class ReleaseFormatError(ValueError):
    """A release CSV that cannot be imported; ``errors`` lists ``(line, column, message)``."""

    def __init__(self, errors: Sequence[tuple[int, str, str]], total: int | None = None) -> None:
        self.errors = list(errors)
        total = len(self.errors) if total is None else total
        listed = "; ".join(f"line {line}, column {col}: {msg}" for line, col, msg in self.errors)
        more = f" (and {total - len(self.errors)} more)" if total > len(self.errors) else ""
        super().__init__(f"{total} error(s) in the release CSV: {listed}{more}")


def format_latency(value: float) -> str:
    """A latency as the shipped CSV writes it (6 decimals at most, no trailing zeros beyond one)."""
    return repr(round(float(value), 6))


# -- parsing -------------------------------------------------------------------------------------------
@dataclass
class ParsedRelease:
    devices: list[str]  # device names, in column order
    cells: dict[str, dict[int, float]]  # device -> arch index -> latency (ms)
    rows: int = 0
    texts: dict[str, dict[int, str]] = field(default_factory=dict)  # the cells as written


def parse_release_csv(csv_in: TextIO | Iterable[str]) -> ParsedRelease:
    """Read and validate a release CSV (see the module docstring); raises ReleaseFormatError."""
    errors: list[tuple[int, str, str]] = []
    total_errors = 0

    def error(line: int, column: str, message: str) -> None:
        nonlocal total_errors
        total_errors += 1
        if len(errors) < MAX_LISTED_ERRORS:
            errors.append((line, column, message))

    reader = csv.reader(csv_in)
    try:
        header = next(reader)
    except StopIteration:
        raise ReleaseFormatError([(1, "-", "the file is empty (expected a header row)")]) from None
    except csv.Error as exc:
        raise ReleaseFormatError([(1, "-", f"not a CSV file: {exc}")]) from None
    header = [name.strip() for name in header]
    if tuple(header[:3]) != FIXED_COLUMNS:
        raise ReleaseFormatError(
            [(1, "-", f"the header must start with {','.join(FIXED_COLUMNS)}, got {','.join(header[:3])!r}")]
        )
    devices: list[str] = []
    for position, name in enumerate(header[3:], start=4):
        device = name[:-3] if name.endswith("_ms") else ""
        if not device or not DEVICE_NAME_RE.match(device):
            error(1, name or f"#{position}", "device columns must be '<device name>_ms' (lower-case, '_')")
        elif device in devices:
            error(1, name, "this device column appears twice")
        devices.append(device)
    if errors:
        raise ReleaseFormatError(errors, total_errors)

    arch_rows = architecture_rows()
    cells: dict[str, dict[int, float]] = {device: {} for device in devices}
    texts: dict[str, dict[int, str]] = {device: {} for device in devices}
    seen: dict[int, int] = {}
    rows = 0
    line = 1
    try:
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            rows += 1
            if len(row) != len(header):
                error(line, "-", f"expected {len(header)} fields, got {len(row)}")
                continue
            try:
                index = int(row[0])
            except ValueError:
                error(line, "arch_index", f"not an integer: {row[0]!r}")
                continue
            if not 0 <= index < nb201.NUM_ARCHS:
                error(line, "arch_index", f"{index} is not an NB201 index (0..{nb201.NUM_ARCHS - 1})")
                continue
            if index in seen:
                error(line, "arch_index", f"index {index} already given on line {seen[index]}")
                continue
            seen[index] = line
            expected = arch_rows[index]
            if row[1] != expected["arch_str"]:
                error(line, "arch_str", f"{row[1]!r} is not the arch string of index {index}")
            if row[2] != expected["op_code"]:
                error(line, "op_code", f"{row[2]!r} is not the op code of index {index} ({expected['op_code']})")
            for device, column, text in zip(devices, header[3:], row[3:], strict=True):
                if text == "":
                    continue
                try:
                    value = float(text)
                except ValueError:
                    value = math.nan
                if not (math.isfinite(value) and value > 0):
                    error(line, column, f"latency must be a positive finite number of ms, got {text!r}")
                elif not expected["valid"]:
                    error(line, column, f"index {index} is an invalid cell (no path to the output): no latency")
                else:
                    cells[device][index] = value
                    texts[device][index] = text
    except csv.Error as exc:
        error(line, "-", f"malformed CSV: {exc}")
    if errors:
        raise ReleaseFormatError(errors, total_errors)
    return ParsedRelease(devices=devices, cells=cells, rows=rows, texts=texts)


# -- writing measurements ------------------------------------------------------------------------------
def _latest_values(session: Session, device_id: int) -> dict[int, tuple[float, str, int | None]]:
    """Arch index -> (latency, provenance, campaign id) of the latest measurement on a device."""
    latest: dict[int, tuple[float, str, int | None]] = {}
    result = session.execute(
        select(Measurement.arch_index, Measurement.latency_ms, Measurement.provenance, Measurement.campaign_id)
        .where(Measurement.device_id == device_id)
        .order_by(Measurement.id)
    )
    for index, latency, provenance, campaign_id in result:
        latest[index] = (latency, provenance, campaign_id)
    return latest


_BULK_COLUMNS = (
    "device_id",
    "arch_index",
    "canonical_key",
    "latency_ms",
    "runtime",
    "precision",
    "provenance",
    "measured_at",
)


def _insert_measurements(session: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk insert: ``COPY`` on PostgreSQL, a Core executemany elsewhere (both in the session's
    transaction). A release has ~200k cells; the ORM's per-row bookkeeping would dominate."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        assert driver is not None
        columns = ", ".join(_BULK_COLUMNS)
        with driver.cursor() as cursor, cursor.copy(f"COPY measurements ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in _BULK_COLUMNS))
        return
    connection.execute(insert(cast(Table, Measurement.__table__)), rows)


def _measurement_rows(
    device: Device, values: Mapping[int, float], provenance: str, now: datetime
) -> list[dict[str, Any]]:
    keys = architecture_rows()
    return [
        {
            "device_id": device.id,
            "arch_index": index,
            "canonical_key": keys[index]["canonical_key"],
            "latency_ms": value,
            "runtime": device.runtime,
            "precision": device.precision or None,
            "provenance": provenance,
            "measured_at": now,
        }
        for index, value in sorted(values.items())
    ]


def _shipped_csv_text() -> str:
    path = resources.files("latbench") / "data" / SHIPPED_CSV
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8", newline="") as f:
        return f.read()


def import_latbench_2020(session: Session) -> dict[str, Any]:
    """Load the shipped LatBench 2020 release (13 devices) as measurements with provenance
    "LatBench 2020". Idempotent: cells already imported with that provenance are skipped."""
    started = time.perf_counter()
    parsed = parse_release_csv(io.StringIO(_shipped_csv_text()))
    facts = {d.name: d for d in latbench_2020_devices()}
    unknown = [name for name in parsed.devices if name not in facts]
    if unknown:  # the shipped file and the table above must agree
        raise RuntimeError(f"{SHIPPED_CSV}: no device facts for {', '.join(unknown)}")
    begin_write(session)
    try:
        ensure_architectures(session)
        now = utcnow()
        inserted: dict[str, int] = {}
        for name in parsed.devices:
            info = facts[name]
            device = ensure_device(
                session,
                name,
                hardware=info.hardware,
                host={"source": PROVENANCE_LATBENCH_2020, "in_paper": info.in_paper, "runs": info.runs_default},
                device_class=info.device_class,
                precision=info.precision,
            )
            have = set(
                session.scalars(
                    select(Measurement.arch_index).where(
                        Measurement.device_id == device.id, Measurement.provenance == PROVENANCE_LATBENCH_2020
                    )
                )
            )
            todo = {i: v for i, v in parsed.cells[name].items() if i not in have}
            _insert_measurements(session, _measurement_rows(device, todo, PROVENANCE_LATBENCH_2020, now))
            inserted[name] = len(todo)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {
        "provenance": PROVENANCE_LATBENCH_2020,
        "devices": len(parsed.devices),
        "inserted": sum(inserted.values()),
        "inserted_per_device": inserted,
        "cells": sum(len(c) for c in parsed.cells.values()),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _sidecar_device(sidecar: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not sidecar:
        return None
    for entry in sidecar.get("devices", []) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return dict(entry)
    return None


def _skipped_fills(sidecar: Mapping[str, Any] | None, parsed: ParsedRelease) -> dict[str, set[int]]:
    """Cells the sidecar says were filled, and whose value in this CSV is their source's value."""
    skipped: dict[str, set[int]] = defaultdict(set)
    filled = (sidecar or {}).get("filled", {}) or {}
    for device, pairs in filled.items():
        texts = parsed.texts.get(device)
        if texts is None:
            continue
        for pair in pairs:
            index, source = int(pair[0]), int(pair[1])
            if index in texts and texts.get(source) == texts[index]:
                skipped[device].add(index)
    return skipped


def import_release(
    session: Session,
    csv_in: TextIO | Iterable[str],
    provenance: str,
    sidecar: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Import a release CSV as measurements with ``provenance`` (all or nothing; see module doc)."""
    if not isinstance(provenance, str) or not provenance.strip() or len(provenance) > 128:
        raise ValueError("provenance must be a short non-empty text, e.g. 'lab X release 2025-01'")
    parsed = parse_release_csv(csv_in)
    skipped_fills = _skipped_fills(sidecar, parsed)
    begin_write(session)
    try:
        ensure_architectures(session)
        errors = []
        devices: dict[str, Device] = {}
        for position, name in enumerate(parsed.devices, start=4):
            device = session.scalar(select(Device).where(Device.name == name))
            if device is None:
                facts = _sidecar_device(sidecar, name)
                if facts is None:
                    errors.append(
                        (
                            1,
                            f"{name}_ms",
                            f"unknown device {name!r} (column {position}); register it first or pass a "
                            "sidecar whose 'devices' list describes it",
                        )
                    )
                    continue
                device = ensure_device(
                    session,
                    check_device_name(name),
                    hardware=str(facts.get("hardware") or ""),
                    runtime=facts.get("runtime") or None,
                    host=facts.get("host") or None,
                    device_class=facts.get("device_class") or None,
                    precision=facts.get("precision") or None,
                )
            devices[name] = device
        if errors:
            raise ReleaseFormatError(errors)
        now = utcnow()
        inserted: dict[str, int] = {}
        unchanged = 0
        for name, device in devices.items():
            current = _latest_values(session, device.id)
            todo = {}
            for index, value in parsed.cells[name].items():
                if index in skipped_fills.get(name, ()):
                    continue
                if index in current and format_latency(current[index][0]) == format_latency(value):
                    unchanged += 1
                    continue
                todo[index] = value
            _insert_measurements(session, _measurement_rows(device, todo, provenance, now))
            inserted[name] = len(todo)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {
        "provenance": provenance,
        "rows": parsed.rows,
        "devices": parsed.devices,
        "inserted": sum(inserted.values()),
        "inserted_per_device": inserted,
        "unchanged": unchanged,
        "skipped_filled": sum(len(v) for v in skipped_fills.values()),
    }


# -- export --------------------------------------------------------------------------------------------
def _protocols(session: Session, campaign_ids: set[int], provenances: Counter[str], device: Device) -> list:
    protocols: list[dict[str, Any]] = []
    if campaign_ids:
        for (protocol,) in session.execute(
            select(Campaign.protocol).where(Campaign.id.in_(sorted(campaign_ids))).order_by(Campaign.id)
        ):
            if protocol not in protocols:
                protocols.append(protocol)
    if PROVENANCE_LATBENCH_2020 in provenances:
        runs = (device.host or {}).get("runs")
        protocols.append({"provenance": PROVENANCE_LATBENCH_2020, "runs": runs, "note": PAPER_PROTOCOL_NOTE})
    return protocols


def _auto_version(session: Session, now: datetime) -> str:
    base = now.strftime("%Y.%m.%d-%H%M%S")
    taken = set(session.scalars(select(Release.version).where(Release.version.like(f"{base}%"))))
    version, n = base, 1
    while version in taken:
        n += 1
        version = f"{base}-{n}"
    return version


def export_release(
    session: Session,
    csv_out: TextIO,
    devices: Sequence[str] | None = None,
    version: str | None = None,
    fill_equivalent: bool = True,
    record: bool = True,
) -> dict[str, Any]:
    """Write a release CSV of ``devices`` (default: every device with measurements) and return its
    sidecar. ``fill_equivalent`` fills cells without a measurement from an equivalent measured cell;
    ``record`` stores the release (version + sidecar) in the ``releases`` table."""
    now = utcnow()
    try:
        if devices is None:
            chosen = list(
                session.scalars(
                    select(Device).where(select(Measurement.id).where(Measurement.device_id == Device.id).exists())
                )
            )
        else:
            chosen = []
            for name in dict.fromkeys(devices):
                device = session.scalar(select(Device).where(Device.name == name))
                if device is None:
                    raise ValueError(f"unknown device {name!r}")
                chosen.append(device)
        chosen.sort(key=lambda d: d.name)
        arch_rows = architecture_rows()
        n = nb201.NUM_ARCHS
        columns: list[list[str]] = []
        device_entries: list[dict[str, Any]] = []
        filled_all: dict[str, list[list[int]]] = {}
        provenance_total: Counter[str] = Counter()
        for device in chosen:
            latest = _latest_values(session, device.id)
            cells: list[str] = [""] * n
            for index, (latency, _, _) in latest.items():
                cells[index] = format_latency(latency)
            filled: list[list[int]] = []
            if fill_equivalent:
                source_of_key: dict[str, int] = {}
                for index in sorted(latest):
                    source_of_key.setdefault(arch_rows[index]["canonical_key"], index)
                for index in range(n):
                    row = arch_rows[index]
                    source = source_of_key.get(row["canonical_key"])
                    if not cells[index] and row["valid"] and source is not None:
                        cells[index] = cells[source]
                        filled.append([index, source])
            provenances = Counter(p for _, p, _ in latest.values())
            provenance_total.update(provenances)
            campaign_ids = {c for _, _, c in latest.values() if c is not None}
            missing = sum(1 for i in range(n) if arch_rows[i]["valid"] and not cells[i])
            columns.append(cells)
            if filled:
                filled_all[device.name] = filled
            device_entries.append(
                {
                    "name": device.name,
                    "column": f"{device.name}_ms",
                    "device_class": device.device_class,
                    "hardware": device.hardware,
                    "precision": device.precision,
                    "runtime": device.runtime,
                    "host": device.host,
                    "measured": len(latest),
                    "filled": len(filled),
                    "missing_valid": missing,
                    "provenance": dict(sorted(provenances.items())),
                    "protocols": _protocols(session, campaign_ids, provenances, device),
                }
            )
        header = ",".join([*FIXED_COLUMNS, *(f"{d.name}_ms" for d in chosen)])
        lines = [header]
        for index in range(n):
            row = arch_rows[index]
            lines.append(",".join([str(index), row["arch_str"], row["op_code"], *(col[index] for col in columns)]))
        text = "\n".join(lines) + "\n"
        if version is None:
            version = _auto_version(session, now)
        sidecar: dict[str, Any] = {
            "format": SIDECAR_FORMAT,
            "version": version,
            "created_at": now.isoformat(),
            "generator": f"eagle-latbench {__version__}",
            "csv": {
                "rows": n,
                "columns": header.split(","),
                "unit": "ms",
                "missing": "empty cell",
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            },
            "devices": device_entries,
            "provenance": dict(sorted(provenance_total.items())),
            "fill_equivalent": fill_equivalent,
            "fill_rule": "a cell without a measurement takes the value of the lowest-index measured cell "
            "with the same canonical pruned graph (same computation)",
            "filled": filled_all,
            "counts": {
                "archs": n,
                "valid_archs": sum(1 for r in arch_rows if r["valid"]),
                "unique_graphs": len({r["canonical_key"] for r in arch_rows if r["valid"]}),
                "devices": len(chosen),
                "cells": sum(1 for col in columns for v in col if v),
                "measured_cells": sum(e["measured"] for e in device_entries),
                "filled_cells": sum(e["filled"] for e in device_entries),
            },
        }
        if record:
            if session.scalar(select(Release.id).where(Release.version == version)) is not None:
                raise ValueError(f"release version {version!r} exists already; choose another")
            begin_write(session)
            session.add(Release(version=version, created_at=now, sidecar=sidecar))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    csv_out.write(text)
    return sidecar
