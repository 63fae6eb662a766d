"""GET /v1/latbench/export (streamed CSV + sidecar by export id) and POST /v1/latbench/import."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json

from latbench.store.archs import architecture_rows
from latbench.store.releases import format_latency
from tests._helpers import distinct_valid

from .conftest import AUTH, DESKTOP, PHONE, Server, snapshot

ROWS = architecture_rows()


def export(server: Server, **params: str) -> tuple[str, dict]:
    response = server.client.get("/v1/latbench/export", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    export_id = response.headers["X-Eagle-Export-Id"]
    assert export_id in response.headers["Link"]
    sidecar = server.client.get("/v1/latbench/export/sidecar", params={"export_id": export_id}).json()
    assert response.headers["X-Eagle-Release-Version"] == sidecar["version"]
    return response.text, sidecar


def upload(server: Server, data: bytes, sidecar: dict | None = None, **form: str) -> tuple[int, dict]:
    files = {"file": ("release.csv", data, "text/csv")}
    if sidecar is not None:
        files["sidecar"] = ("release.csv.json", json.dumps(sidecar).encode(), "application/json")
    response = server.client.post("/v1/latbench/import", files=files, data=form or None, headers=AUTH)
    return response.status_code, response.json()


def test_export_streams_the_csv_and_its_sidecar(server: Server) -> None:
    a, b, c = distinct_valid(3)
    server.measure(DESKTOP, [a, b], latency_ms=2.25)
    server.measure(PHONE, [c], latency_ms=7.5)
    text, sidecar = export(server)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["arch_index", "arch_str", "op_code", f"{DESKTOP}_ms", f"{PHONE}_ms"]
    assert len(rows) == 1 + 15_625
    assert rows[1 + a][:4] == [str(a), ROWS[a]["arch_str"], ROWS[a]["op_code"], format_latency(2.25)]
    assert rows[1 + b][3] == format_latency(3.25)
    assert rows[1 + c][4] == format_latency(7.5)
    assert sidecar["csv"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert [d["name"] for d in sidecar["devices"]] == [DESKTOP, PHONE]
    assert sidecar["counts"]["measured_cells"] == 3

    only_phone, side = export(server, devices=PHONE)
    assert only_phone.splitlines()[0].endswith(f"op_code,{PHONE}_ms")
    assert [d["name"] for d in side["devices"]] == [PHONE]
    fresh = server.client.get("/v1/latbench/export/sidecar", params={"devices": PHONE, "version": "v9"}).json()
    assert fresh["version"] == "v9" and fresh["csv"]["sha256"] == side["csv"]["sha256"]


def test_export_refusals(server: Server) -> None:
    unknown = server.client.get("/v1/latbench/export", params={"devices": f"{DESKTOP},nope"})
    assert unknown.status_code == 404 and "unknown device 'nope'" in unknown.json()["detail"]
    gone = server.client.get("/v1/latbench/export/sidecar", params={"export_id": "feed"})
    assert gone.status_code == 404 and "export again" in gone.json()["detail"]


def test_round_trip_is_byte_identical(server: Server) -> None:
    server.measure(DESKTOP, distinct_valid(4), latency_ms=1.125)
    text, sidecar = export(server, devices=DESKTOP)
    before = snapshot(server.factory)
    code, summary = upload(server, text.encode(), sidecar)
    assert code == 200, summary
    # Nothing new: every measured cell is unchanged and the filled ones are not measurements.
    assert summary["inserted"] == 0 and summary["unchanged"] == 4
    assert summary["provenance"] == f"release {sidecar['version']}"
    assert snapshot(server.factory) == before
    again, _ = export(server, devices=DESKTOP)
    assert again == text


def test_import_new_values_plain_and_gzip(server: Server) -> None:
    a, b = distinct_valid(2, skip=20)
    header = f"arch_index,arch_str,op_code,{PHONE}_ms\n"
    line = lambda i, v: f"{i},{ROWS[i]['arch_str']},{ROWS[i]['op_code']},{v}\n"  # noqa: E731
    code, summary = upload(server, (header + line(a, "4.5")).encode(), provenance="lab A 2025")
    assert code == 200 and summary["inserted"] == 1 and summary["provenance"] == "lab A 2025"
    code, summary = upload(server, gzip.compress((header + line(b, "6.0")).encode()))
    assert code == 200 and summary["inserted"] == 1 and summary["provenance"] == "import"
    page = server.client.get("/v1/measurements", params={"device": PHONE}).json()
    assert {(m["arch_index"], m["latency_ms"], m["provenance"]) for m in page["items"]} == {
        (a, 4.5, "lab A 2025"),
        (b, 6.0, "import"),
    }


def test_bad_uploads_name_the_problem_and_change_nothing(server: Server) -> None:
    a, b = distinct_valid(2)
    invalid = next(r["index"] for r in ROWS if not r["valid"])
    row = lambda i, v: f"{i},{ROWS[i]['arch_str']},{ROWS[i]['op_code']},{v}"  # noqa: E731
    header = f"arch_index,arch_str,op_code,{DESKTOP}_ms"
    cases = [
        (f"{header}\n{row(a, '1.0')}\n{row(b, '-2')}\n", ["line 3", f"{DESKTOP}_ms", "positive finite"]),
        (f"{header}\n{row(a, 'fast')}\n", ["line 2", "'fast'"]),
        (f"{header}\n{a},{ROWS[b]['arch_str']},{ROWS[a]['op_code']},1.0\n", ["line 2", "arch_str", str(a)]),
        (f"{header}\n{row(invalid, '1.0')}\n", ["invalid cell"]),
        (f"{header}\n{row(a, '1.0')}\n{row(a, '1.0')}\n", ["line 3", "already given on line 2"]),
        (f"{header}\n{row(a, '1.0')},9\n", ["expected 4 fields, got 5"]),
        (f"{header},desktop_cpu_ghost_fp32_ms\n{row(a, '1.0')},2.0\n", ["unknown device 'desktop_cpu_ghost_fp32'"]),
        (f"index,arch_str,op_code,{DESKTOP}_ms\n", ["header must start with arch_index,arch_str,op_code"]),
        ("", ["empty"]),
    ]
    server.measure(DESKTOP, [b], latency_ms=9.0)
    before = snapshot(server.factory)
    for text, words in cases:
        code, body = upload(server, text.encode())
        assert code == 422, (text, body)
        for word in words:
            assert word in body["detail"], (word, body["detail"])
        assert snapshot(server.factory) == before

    code, body = upload(server, b"\xff\xfe\x00garbage")
    assert code == 422 and "not UTF-8" in body["detail"]
    code, body = upload(server, b"\x1f\x8b broken")
    assert code == 422 and "gzip" in body["detail"]
    response = server.client.post(
        "/v1/latbench/import",
        files={"file": ("r.csv", f"{header}\n".encode()), "sidecar": ("s.json", b"{not json")},
        headers=AUTH,
    )
    assert response.status_code == 422 and response.json()["detail"].startswith("sidecar: not JSON")
    missing = server.client.post("/v1/latbench/import", headers=AUTH)
    assert missing.status_code == 422 and "file" in missing.json()["detail"]
    assert snapshot(server.factory) == before
