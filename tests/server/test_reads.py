"""Open (read) endpoints: health, devices, agents, measurements, OpenAPI docs; error bodies."""

from __future__ import annotations

from datetime import timedelta

from alembic.script import ScriptDirectory
from sqlalchemy import update

from latbench import nb201
from latbench.store import queue
from latbench.store.db import alembic_config
from latbench.store.models import Agent, utcnow
from latbench.store.tokens import create_agent_token
from tests._helpers import distinct_valid

from .conftest import CAPS, DESKTOP, PHONE, Server


def test_health_reports_backend_schema_agents_and_queue(server: Server) -> None:
    body = server.client.get("/v1/health").json()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert body["status"] == "ok"
    assert body["db_backend"] == server.engine.dialect.name
    assert body["schema_revision"] == head
    assert (body["agents_online"], body["queue_depth"]) == (0, 0)

    with server.session() as s:
        queue.register_agent(s, create_agent_token(s), DESKTOP, "h", CAPS, None)
        queue.submit_campaign(s, DESKTOP, distinct_valid(4))
    body = server.client.get("/v1/health").json()
    assert (body["agents_online"], body["queue_depth"]) == (1, 4)


def test_devices_list_and_detail_count_measurements(server: Server) -> None:
    server.measure(DESKTOP, distinct_valid(3))
    devices = {d["name"]: d for d in server.client.get("/v1/devices").json()}
    assert set(devices) == {DESKTOP, PHONE}
    assert devices[DESKTOP]["measurements"] == 3
    assert devices[PHONE]["measurements"] == 0
    assert devices[PHONE]["device_class"] == "mobile_gpu"
    assert devices[PHONE]["precision"] == "int8"

    detail = server.client.get(f"/v1/devices/{DESKTOP}").json()
    assert detail["hardware"] == "test box"
    assert detail["measurements_by_provenance"] == {"eagle": 3}
    assert detail["agents"] == 1


def test_unknown_device_is_404_listing_known_ones(server: Server) -> None:
    response = server.client.get("/v1/devices/desktop_cpu_nope_fp32")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "desktop_cpu_nope_fp32" in detail and DESKTOP in detail and PHONE in detail


def test_agents_show_live_state_capabilities_and_backend_check(server: Server) -> None:
    with server.session() as s:
        token = create_agent_token(s)
        live = queue.register_agent(s, token, DESKTOP, "box-1", CAPS, {"ok": True, "found": {"litert": "2.3"}})
        silent = queue.register_agent(s, token, PHONE, "phone-1", ["litert:int8"], {"ok": False})
        # The second agent last spoke two leases ago: it counts as offline.
        s.execute(
            update(Agent)
            .where(Agent.id == silent)
            .values(last_heartbeat=utcnow() - timedelta(seconds=2 * server.settings.lease_s))
        )
        s.commit()
    agents = {a["id"]: a for a in server.client.get("/v1/agents").json()}
    assert agents[live]["state"] == "online"
    assert agents[live]["device"] == DESKTOP
    assert agents[live]["capabilities"] == CAPS
    assert agents[live]["backend_check"] == {"ok": True, "found": {"litert": "2.3"}}
    assert agents[live]["hostname"] == "box-1"
    assert agents[silent]["state"] == "offline"
    assert server.client.get("/v1/health").json()["agents_online"] == 1


def test_measurements_filter_and_page(server: Server) -> None:
    a, b, c = distinct_valid(3)
    first = server.measure(DESKTOP, [a, b], latency_ms=2.0)
    second = server.measure(PHONE, [b, c], latency_ms=5.0)
    get = server.client.get

    everything = get("/v1/measurements").json()
    assert everything["total"] == 4 and len(everything["items"]) == 4
    assert get("/v1/measurements", params={"device": PHONE}).json()["total"] == 2
    assert get("/v1/measurements", params={"campaign": first}).json()["total"] == 2
    assert get("/v1/measurements", params={"provenance": "eagle"}).json()["total"] == 4
    assert get("/v1/measurements", params={"provenance": "LatBench 2020"}).json()["total"] == 0

    arch_str = nb201.Arch.from_index(b).arch_str
    by_index = get("/v1/measurements", params={"arch": str(b)}).json()
    by_str = get("/v1/measurements", params={"arch": arch_str}).json()
    assert by_index == by_str
    assert {m["device"] for m in by_index["items"]} == {DESKTOP, PHONE}
    assert all(m["arch_index"] == b and m["arch_str"] == arch_str for m in by_index["items"])

    one = get("/v1/measurements", params={"device": PHONE, "campaign": second, "arch": str(c)}).json()
    (item,) = one["items"]
    assert item["latency_ms"] == 6.0 and item["runtime"] == "litert" and item["raw_ms"] is None
    with_raw = get("/v1/measurements", params={"arch": str(c), "raw": "true"}).json()
    assert with_raw["items"][0]["raw_ms"] == [5.0] * 20

    pages = [get("/v1/measurements", params={"limit": 3, "offset": off}).json() for off in (0, 3)]
    assert [len(p["items"]) for p in pages] == [3, 1]
    assert all(p["total"] == 4 for p in pages)
    ids = [m["id"] for p in pages for m in p["items"]]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_measurement_filters_are_checked(server: Server) -> None:
    get = server.client.get
    bad_arch = get("/v1/measurements", params={"arch": "|conv~0|"})
    assert bad_arch.status_code == 422 and bad_arch.json()["detail"].startswith("arch:")
    out_of_range = get("/v1/measurements", params={"arch": "15625"})
    assert out_of_range.status_code == 422 and "15625" in out_of_range.json()["detail"]
    unknown = get("/v1/measurements", params={"device": "nope"})
    assert unknown.status_code == 404 and DESKTOP in unknown.json()["detail"]
    too_many = get("/v1/measurements", params={"limit": 5000})
    assert too_many.status_code == 422
    assert too_many.json()["detail"] == "invalid request: limit (query): Input should be less than or equal to 1000"


def test_openapi_docs(server: Server) -> None:
    assert server.client.get("/docs").status_code == 200
    paths = server.client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/health",
        "/v1/devices",
        "/v1/devices/{name}",
        "/v1/agents",
        "/v1/agents/tokens",
        "/v1/campaigns",
        "/v1/campaigns/{campaign_id}",
        "/v1/campaigns/{campaign_id}/cancel",
        "/v1/measurements",
        "/v1/latbench/export",
        "/v1/latbench/export/sidecar",
        "/v1/latbench/import",
    ):
        assert path in paths, path
