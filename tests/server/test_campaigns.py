"""POST/GET /v1/campaigns and cancel: every models form, protocol defaults, progress, and refusals that
leave the database as it was."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from latbench import nb201
from latbench.store import queue
from latbench.store.archs import architecture_rows, ensure_architectures
from latbench.store.models import Device, Job, Measurement, utcnow
from latbench.store.tokens import create_agent_token
from tests._helpers import distinct_valid

from .conftest import AUTH, CAPS, DESKTOP, PHONE, Server, equivalent_pair, snapshot

ROWS = architecture_rows()
VALID = [r["index"] for r in ROWS if r["valid"]]
INVALID = next(r["index"] for r in ROWS if not r["valid"])


def submit(server: Server, **body: object) -> dict:
    response = server.client.post("/v1/campaigns", json={"device": DESKTOP, **body}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def job_indices(server: Server, campaign_id: int) -> list[int]:
    with server.session() as s:
        return list(s.scalars(select(Job.arch_index).where(Job.campaign_id == campaign_id).order_by(Job.id)))


def test_indices_with_protocol_priority_and_name(server: Server) -> None:
    indices = distinct_valid(3)
    body = submit(
        server,
        models={"indices": indices},
        runtime="tf",
        protocol={"runs": 20, "warmup": 2},
        priority=5,
        name="first look",
    )
    assert body["requested"] == 3 and body["total"] == 3
    assert body["counts"] == {"queued": 3, "leased": 0, "done": 0, "failed": 0, "cancelled": 0}
    assert body["protocol"] == {"runs": 20, "warmup": 2, "group_size": 10, "pause_s": 0.0}
    assert (body["runtime"], body["precision"], body["priority"], body["name"]) == ("tf", "fp32", 5, "first look")
    assert body["state"] == "queued" and body["done_fraction"] == 0.0 and body["eta_s"] is None
    assert job_indices(server, body["campaign_id"]) == indices


def test_protocol_and_precision_default_to_the_device(server: Server) -> None:
    desktop = submit(server, models={"indices": distinct_valid(1)})
    phone = server.client.post(
        "/v1/campaigns", json={"device": PHONE, "models": {"indices": distinct_valid(1)}}, headers=AUTH
    ).json()
    assert desktop["protocol"]["runs"] == 1000 and desktop["precision"] == "fp32"
    assert phone["protocol"]["runs"] == 10 and phone["precision"] == "int8"


def test_arch_strings_name_the_same_cells_as_indices(server: Server) -> None:
    indices = distinct_valid(2, skip=10)
    body = submit(server, models={"arch_strs": [nb201.Arch.from_index(i).arch_str for i in indices]})
    assert job_indices(server, body["campaign_id"]) == indices


def test_dedupe_queues_one_cell_per_graph(server: Server) -> None:
    a, b = equivalent_pair()
    deduped = submit(server, models={"indices": [a, b]})
    assert (deduped["requested"], deduped["total"]) == (2, 1)
    both = submit(server, models={"indices": [a, b]}, dedupe=False)
    assert both["total"] == 2


def test_all_queues_every_valid_graph_once(server: Server) -> None:
    body = submit(server, models="all", protocol={"runs": 10})
    unique = {ROWS[i]["canonical_key"] for i in VALID}
    assert body["requested"] == len(VALID) == 15_284
    assert body["total"] == len(unique) == 5_256


def test_random_draw_is_reproducible_by_seed(server: Server) -> None:
    one = submit(server, models={"random": 7, "seed": 42})
    two = submit(server, models={"random": 7, "seed": 42})
    other = submit(server, models={"random": 7, "seed": 43})
    assert one["seed"] == 42
    drawn = job_indices(server, one["campaign_id"])
    assert len(drawn) == one["total"] and set(drawn) <= set(VALID)
    assert drawn == job_indices(server, two["campaign_id"])
    assert drawn != job_indices(server, other["campaign_id"])
    unseeded = submit(server, models={"random": 3})
    assert isinstance(unseeded["seed"], int)  # reported back so the draw can be repeated


def test_unmeasured_skips_measured_cells_and_their_equivalents(server: Server) -> None:
    a, b = equivalent_pair()
    measured = distinct_valid(2)
    server.measure(DESKTOP, [*measured, a])
    body = submit(server, models="unmeasured", dedupe=False)
    queued = set(job_indices(server, body["campaign_id"]))
    assert queued.isdisjoint({*measured, a})
    assert b in queued  # without dedupe, an equivalent cell is still timed
    assert len(queued) == len(VALID) - 3
    deduped = submit(server, models="unmeasured")
    keys = {ROWS[i]["canonical_key"] for i in job_indices(server, deduped["campaign_id"])}
    assert ROWS[b]["canonical_key"] not in keys


def test_progress_counts_and_eta(server: Server) -> None:
    body = submit(server, models={"indices": distinct_valid(3)}, protocol={"runs": 20})
    cid = body["campaign_id"]
    with server.session() as s:
        agent = queue.register_agent(s, create_agent_token(s), DESKTOP, "h", CAPS, None)
        job = queue.lease_job(s, agent, DESKTOP, CAPS)
        assert job is not None
        queue.report_result(s, job.job_id, job.lease_id, agent, 1.0, {}, [1.0], {}, "litert", "fp32")
        queue.lease_job(s, agent, DESKTOP, CAPS)
    progress = server.client.get(f"/v1/campaigns/{cid}").json()
    assert progress["state"] == "running"
    assert progress["counts"] == {"queued": 1, "leased": 1, "done": 1, "failed": 0, "cancelled": 0}
    assert progress["done_fraction"] == pytest.approx(1 / 3)
    assert progress["eta_s"] is not None and progress["eta_s"] >= 0
    assert progress["active_agents"] == 1

    listing = server.client.get("/v1/campaigns").json()
    assert listing["total"] == 1 and listing["items"][0]["campaign_id"] == cid
    assert server.client.get("/v1/campaigns", params={"state": "done"}).json()["total"] == 0
    assert server.client.get("/v1/campaigns", params={"device": PHONE}).json()["total"] == 0


def test_cancel(server: Server) -> None:
    cid = submit(server, models={"indices": distinct_valid(4)})["campaign_id"]
    response = server.client.post(f"/v1/campaigns/{cid}/cancel", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"campaign_id": cid, "cancelled_jobs": 4, "state": "cancelled"}
    progress = server.client.get(f"/v1/campaigns/{cid}").json()
    assert progress["counts"]["cancelled"] == 4 and progress["state"] == "cancelled"
    again = server.client.post(f"/v1/campaigns/{cid}/cancel", headers=AUTH).json()
    assert again["cancelled_jobs"] == 0


def test_unknown_campaign_is_404(server: Server) -> None:
    assert server.client.get("/v1/campaigns/999").status_code == 404
    response = server.client.post("/v1/campaigns/999/cancel", headers=AUTH)
    assert response.status_code == 404 and response.json()["detail"] == "no campaign 999"


BAD_SUBMISSIONS = [
    # (body changes, status, words the message must contain)
    ({"device": "desktop_cpu_nope_fp32"}, 404, ["unknown device 'desktop_cpu_nope_fp32'", DESKTOP, PHONE]),
    (
        {"models": {"arch_strs": ["|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "|bad~0|"]}},
        422,
        ["models.arch_strs[1]"],
    ),
    ({"models": {"indices": [1, 15625]}}, 422, ["15625", "0..15624"]),
    ({"models": {"indices": [INVALID]}}, 422, ["invalid", str(INVALID)]),
    ({"models": {"indices": []}}, 422, ["models.indices"]),
    ({"models": "everything"}, 422, ['models must be "all"']),
    ({"models": {"random": 0}}, 422, ["models.random"]),
    ({"models": {"random": 20000}}, 422, ["20000", "15284"]),
    ({"protocol": {"runs": 0}}, 422, ["protocol.runs", "greater than or equal to 1"]),
    ({"protocol": {"group_size": 0}}, 422, ["protocol.group_size"]),
    ({"protocol": {"pause_s": -1}}, 422, ["protocol.pause_s"]),
    ({"protocol": {"repeats": 3}}, 422, ["protocol.repeats", "Extra inputs"]),
    ({"runtime": "Tensor Flow!"}, 422, ["runtime", "Tensor Flow!"]),
    ({"precision": "FP32"}, 422, ["precision"]),
    ({"priority": "high"}, 422, ["priority"]),
    ({"max_attempts": 0}, 422, ["max_attempts"]),
]


@pytest.mark.parametrize(("change", "code", "words"), BAD_SUBMISSIONS, ids=[str(b[0])[:40] for b in BAD_SUBMISSIONS])
def test_bad_submission_is_refused_and_changes_nothing(
    server: Server, change: dict, code: int, words: list[str]
) -> None:
    submit(server, models={"indices": distinct_valid(1)})  # something in the store to keep
    before = snapshot(server.factory)
    body = {"device": DESKTOP, "models": {"indices": distinct_valid(2)}, **change}
    response = server.client.post("/v1/campaigns", json=body, headers=AUTH)
    assert response.status_code == code, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, (word, detail)
    assert snapshot(server.factory) == before


def test_unmeasured_with_nothing_left_is_a_conflict(server: Server) -> None:
    with server.session() as s:  # every valid cell measured on the phone (bulk, as a release import does)
        ensure_architectures(s)
        phone_id = s.scalar(select(Device.id).where(Device.name == PHONE))
        rows = [
            {
                "device_id": phone_id,
                "arch_index": i,
                "canonical_key": ROWS[i]["canonical_key"],
                "latency_ms": 1.0,
                "provenance": "test",
                "measured_at": utcnow(),
            }
            for i in VALID
        ]
        s.execute(insert(Measurement), rows)
        s.commit()
    before = snapshot(server.factory)
    response = server.client.post("/v1/campaigns", json={"device": PHONE, "models": "unmeasured"}, headers=AUTH)
    assert response.status_code == 409 and "nothing to queue" in response.json()["detail"]
    assert snapshot(server.factory) == before
