"""LatBench releases: the shipped 2020 release in and out, round trips, and import validation."""

from __future__ import annotations

import csv
import gzip
import io
from importlib import resources

import pytest
from alembic import command
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from latbench.store import queue
from latbench.store.archs import architecture_rows
from latbench.store.db import alembic_config, upgrade
from latbench.store.devices import ensure_device
from latbench.store.models import Device, Measurement, Release
from latbench.store.releases import (
    PROVENANCE_LATBENCH_2020,
    ReleaseFormatError,
    export_release,
    format_latency,
    import_latbench_2020,
    import_release,
)

from .conftest import CAPS

ROWS = architecture_rows()
HEADER = "arch_index,arch_str,op_code"


def _shipped() -> str:
    path = resources.files("latbench") / "data" / "latbench_latency.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8", newline="") as f:
        return f.read()


def _measurements(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Measurement)) or 0)


def _line(index: int, *values: str) -> str:
    row = ROWS[index]
    return ",".join([str(index), row["arch_str"], row["op_code"], *values])


def test_format_latency_matches_the_shipped_file() -> None:
    assert [format_latency(v) for v in (3.896706, 16.804, 4.0, 2.8280000001, 0.1234564)] == [
        "3.896706",
        "16.804",
        "4.0",
        "2.828",
        "0.123456",
    ]


def test_latbench_2020_in_and_out(session: Session) -> None:
    shipped = _shipped()
    table = list(csv.reader(io.StringIO(shipped)))
    header, body = table[0], table[1:]
    expected = {name[:-3]: sum(1 for row in body if row[k]) for k, name in enumerate(header) if k >= 3}

    summary = import_latbench_2020(session)
    assert summary["devices"] == 13 and summary["inserted"] == sum(expected.values()) == 198_559
    per_device = dict(session.execute(select(Device.name, func.count()).join(Measurement).group_by(Device.name)).all())
    assert per_device == expected
    assert expected["desktop_cpu_core_i7_7820x_fp32"] == 15_284
    gpu = session.scalar(select(Device).where(Device.name == "desktop_gpu_gtx_1080ti_fp32"))
    assert gpu is not None and gpu.hardware == "NVIDIA GeForce GTX 1080 Ti" and gpu.device_class == "desktop_gpu"
    assert gpu.precision == "fp32" and gpu.host == {"source": "LatBench 2020", "in_paper": True, "runs": 1000}
    assert import_latbench_2020(session)["inserted"] == 0  # idempotent
    assert _measurements(session) == 198_559

    exact = io.StringIO()
    export_release(session, exact, fill_equivalent=False, record=False)
    assert exact.getvalue() == shipped  # byte for byte

    filled_out = io.StringIO()
    sidecar = export_release(session, filled_out, version="latbench-2020-filled")
    filled_rows = list(csv.reader(io.StringIO(filled_out.getvalue())))
    assert filled_rows[0] == header
    flagged = {(dev, idx): src for dev, pairs in sidecar["filled"].items() for idx, src in pairs}
    changed = set()
    for index, (old, new) in enumerate(zip(body, filled_rows[1:], strict=True)):
        for k in range(3, len(header)):
            if old[k] != new[k]:
                device = header[k][:-3]
                changed.add((device, index))
                assert old[k] == "" and ROWS[index]["valid"]
                source = flagged[(device, index)]
                assert new[k] == body[source][k] != ""
                assert ROWS[source]["canonical_key"] == ROWS[index]["canonical_key"]
    assert changed == set(flagged) and len(changed) == sidecar["counts"]["filled_cells"] > 0
    assert {d["name"] for d in sidecar["devices"]} == set(expected)
    assert sidecar["provenance"] == {PROVENANCE_LATBENCH_2020: 198_559}
    assert sidecar["counts"]["unique_graphs"] == 5256 and sidecar["counts"]["valid_archs"] == 15_284
    nano = next(d for d in sidecar["devices"] if d["name"] == "embedded_gpu_jetson_nano_fp32")
    assert nano["hardware"] == "NVIDIA Jetson Nano" and nano["protocols"][0]["runs"] == 1000
    stored = session.scalar(select(Release).where(Release.version == "latbench-2020-filled"))
    assert stored is not None and stored.sidecar["csv"]["sha256"] == sidecar["csv"]["sha256"]
    with pytest.raises(ValueError, match="exists already"):
        export_release(session, io.StringIO(), version="latbench-2020-filled")


def _measure_some(session: Session, token: str) -> None:
    """Two devices measured through the queue, with deduplication, so the release has filled cells."""
    groups: dict[str, list[int]] = {}
    for row in ROWS:
        if row["valid"]:
            groups.setdefault(row["canonical_key"], []).append(row["index"])
    archs = [i for g in list(groups.values())[:40] for i in g[:3]]
    for name, hardware, scale in (("desktop_cpu_box_a_fp32", "CPU A", 1.0), ("desktop_cpu_box_b_fp32", "CPU B", 2.0)):
        ensure_device(session, name, hardware=hardware, runtime="litert", host={"os": "linux"})
        session.commit()
        agent = queue.register_agent(session, token, name, "h", list(CAPS), None)
        queue.submit_campaign(session, name, archs, protocol={"runs": 50})
        while (leased := queue.lease_job(session, agent, name, CAPS)) is not None:
            latency = scale * (1 + leased.arch_index / 7919)
            queue.report_result(
                session, leased.job_id, leased.lease_id, agent, latency, {}, [latency], {}, "litert", "fp32"
            )


def test_round_trip_is_byte_identical(engine: Engine, factory: sessionmaker[Session], token: str) -> None:
    with factory() as session:
        _measure_some(session, token)
        first = io.StringIO()
        sidecar = export_release(session, first, version="r1")
    assert sidecar["counts"]["filled_cells"] > 0 and sidecar["counts"]["measured_cells"] == 80
    assert sidecar["devices"][0]["protocols"] == [{"runs": 50, "warmup": 10, "group_size": 10, "pause_s": 0.0}]

    command.downgrade(alembic_config(engine), "base")  # a fresh, empty database on the same server
    upgrade(engine)
    with factory() as session:
        with pytest.raises(ReleaseFormatError, match="unknown device 'desktop_cpu_box_a_fp32'"):
            import_release(session, io.StringIO(first.getvalue()), "lab release r1")
        assert _measurements(session) == 0
        summary = import_release(session, io.StringIO(first.getvalue()), "lab release r1", sidecar=sidecar)
        assert summary["inserted"] == 80 and summary["skipped_filled"] == sidecar["counts"]["filled_cells"]
        second = io.StringIO()
        sidecar2 = export_release(session, second, version="r2")
        assert second.getvalue() == first.getvalue()
        assert sidecar2["filled"] == sidecar["filled"]
        assert [(d["name"], d["hardware"], d["runtime"]) for d in sidecar2["devices"]] == [
            ("desktop_cpu_box_a_fp32", "CPU A", "litert"),
            ("desktop_cpu_box_b_fp32", "CPU B", "litert"),
        ]
        again = import_release(session, io.StringIO(first.getvalue()), "lab release r1", sidecar=sidecar)
        assert again["inserted"] == 0 and again["unchanged"] == 80  # importing twice adds nothing


COL = "desktop_cpu_box_fp32_ms"
BAD_CASES = [  # (bad rows, which come first (line 2...), then 100 good rows; expected message)
    ([_line(5, "1.0").replace(ROWS[5]["arch_str"], ROWS[6]["arch_str"])], "line 2, column arch_str"),
    ([_line(5, "1.0").replace(f",{ROWS[5]['op_code']},", ",000000,")], "line 2, column op_code"),
    ([_line(5, "1.0"), _line(7, "-2")], f"line 3, column {COL}: latency must be a positive"),
    ([_line(5, "0")], f"line 2, column {COL}: latency must be a positive"),
    ([_line(5, "nan")], f"line 2, column {COL}"),
    ([_line(5, "inf")], f"line 2, column {COL}"),
    ([_line(5, "fast")], f"line 2, column {COL}.*'fast'"),
    ([_line(5, "1.0", "2.0")], "line 2, column -: expected 4 fields, got 5"),
    ([_line(5, "1.0"), _line(5, "1.0")], "line 3, column arch_index: index 5 already given on line 2"),
    (["15625,x,y,1.0"], "line 2, column arch_index: 15625 is not an NB201 index"),
    (["five,x,y,1.0"], "line 2, column arch_index: not an integer"),
]
INVALID_CELL = next(r["index"] for r in ROWS if not r["valid"])


@pytest.mark.parametrize(("bad_rows", "message"), BAD_CASES)
def test_import_rejects_bad_rows(session: Session, bad_rows: list[str], message: str) -> None:
    ensure_device(session, "desktop_cpu_box_fp32")
    session.commit()
    good = [_line(i, "1.5") for i in range(100, 200) if ROWS[i]["valid"]]
    text = "\n".join([f"{HEADER},{COL}", *bad_rows, *good]) + "\n"
    with pytest.raises(ReleaseFormatError, match=message):
        import_release(session, io.StringIO(text), "test")
    assert _measurements(session) == 0  # all or nothing


def test_import_rejects_bad_headers_and_invalid_cells(session: Session) -> None:
    ensure_device(session, "desktop_cpu_box_fp32")
    session.commit()
    cases = [
        ("", "the file is empty"),
        ("index,arch_str,op_code,desktop_cpu_box_fp32_ms\n", "header must start with arch_index,arch_str,op_code"),
        (f"{HEADER},desktop_cpu_box_fp32\n", r"line 1, column desktop_cpu_box_fp32: device columns must be"),
        (f"{HEADER},desktop_cpu_box_fp32_ms,desktop_cpu_box_fp32_ms\n", "appears twice"),
        (f"{HEADER},desktop_cpu_box_fp32_ms\n{_line(INVALID_CELL, '1.0')}\n", "invalid cell"),
        (
            f"{HEADER},desktop_cpu_box_fp32_ms,mystery_npu_x_int8_ms\n{_line(5, '1.0', '2.0')}\n",
            r"line 1, column mystery_npu_x_int8_ms: unknown device 'mystery_npu_x_int8'",
        ),
    ]
    for text, message in cases:
        with pytest.raises(ReleaseFormatError, match=message):
            import_release(session, io.StringIO(text), "test")
    assert _measurements(session) == 0
    assert session.scalar(select(func.count()).select_from(Device)) == 1  # no device created either
    with pytest.raises(ValueError, match="provenance"):
        import_release(session, io.StringIO(f"{HEADER}\n"), " ")


def test_import_partial_release_and_missing_cells(session: Session) -> None:
    ensure_device(session, "desktop_cpu_box_fp32")
    session.commit()
    text = "\n".join([f"{HEADER},desktop_cpu_box_fp32_ms", _line(5, "1.25"), _line(9, ""), _line(3, "0.5")]) + "\n"
    summary = import_release(session, io.StringIO(text), "partial")
    assert summary["rows"] == 3 and summary["inserted"] == 2
    values = dict(session.execute(select(Measurement.arch_index, Measurement.latency_ms)).all())
    assert values == {5: 1.25, 3: 0.5}
    assert {p for (p,) in session.execute(select(Measurement.provenance))} == {"partial"}
