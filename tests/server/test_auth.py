"""Every REST write needs the API key: without it, or with a wrong one, nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from eagle_server.app import create_app
from eagle_server.settings import Settings
from tests._helpers import distinct_valid

from .conftest import AUTH, DESKTOP, Server, snapshot


def _campaign(server: Server) -> int:
    response = server.client.post(
        "/v1/campaigns", json={"device": DESKTOP, "models": {"indices": distinct_valid(2)}}, headers=AUTH
    )
    return int(response.json()["campaign_id"])


def _csv(server: Server) -> bytes:
    return server.client.get("/v1/latbench/export", params={"devices": DESKTOP}).content


# Each write endpoint with a request that would succeed with the key.
WRITES: dict[str, Any] = {
    "/v1/agents/tokens": lambda s: {"json": {"note": "x"}},
    "/v1/campaigns": lambda s: {"json": {"device": DESKTOP, "models": {"indices": distinct_valid(3)}}},
    "/v1/campaigns/{campaign_id}/cancel": lambda s: {"path": {"campaign_id": _campaign(s)}},
    "/v1/latbench/import": lambda s: {"files": {"file": ("r.csv", _csv(s), "text/csv")}},
}


def test_every_write_endpoint_is_covered_here() -> None:
    app = create_app(Settings(api_key="k"), session_factory=object())  # type: ignore[arg-type]
    paths = app.openapi()["paths"]
    writes = {path for path, methods in paths.items() if set(methods) - {"get", "head", "options"}}
    reads_by_post = {"/v1/predict"}  # many archs in one body; changes nothing, so open like the GET
    assert writes - reads_by_post == set(WRITES)


@pytest.mark.parametrize("path", sorted(WRITES))
@pytest.mark.parametrize(
    ("headers", "code", "words"),
    [({}, 401, "send the server's API key in the X-API-Key header"), ({"X-API-Key": "guess"}, 403, "wrong API key")],
    ids=["no-key", "wrong-key"],
)
def test_write_without_the_key_is_refused(
    server: Server, path: str, headers: dict[str, str], code: int, words: str
) -> None:
    if path == "/v1/latbench/import":
        server.measure(DESKTOP, distinct_valid(1, skip=5), latency_ms=3.0)
    request = WRITES[path](server)
    url = path.format(**request.pop("path", {}))
    before = snapshot(server.factory)
    response = server.client.post(url, headers=headers, **request)
    assert response.status_code == code, response.text
    assert words in response.json()["detail"]
    assert snapshot(server.factory) == before
    # The same request with the key goes through: the refusal was about the key only.
    assert server.client.post(url, headers=AUTH, **request).status_code in (200, 201)


def test_without_a_configured_key_no_write_is_accepted(server: Server) -> None:
    app = create_app(Settings(api_key=None), server.factory)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        before = snapshot(server.factory)
        response = client.post("/v1/agents/tokens", json={}, headers={"X-API-Key": ""})
        assert response.status_code == 503 and "no API key configured" in response.json()["detail"]
        assert client.post("/v1/agents/tokens", json={}, headers=AUTH).status_code == 503
        assert snapshot(server.factory) == before
        assert client.get("/v1/devices").status_code == 200  # reads stay open


def test_token_is_shown_once_and_works(server: Server) -> None:
    from latbench.store.tokens import list_tokens, verify_token

    response = server.client.post("/v1/agents/tokens", json={"note": "lab box 3"}, headers=AUTH)
    assert response.status_code == 201
    token = response.json()["token"]
    assert response.json()["note"] == "lab box 3"
    with server.session() as s:
        assert verify_token(s, token)
        assert [t.note for t in list_tokens(s)] == ["lab box 3"]
        assert token not in {t.token_hash for t in list_tokens(s)}
    no_body = server.client.post("/v1/agents/tokens", headers=AUTH)
    assert no_body.status_code == 201 and no_body.json()["token"] != token
