"""A small REST client of the Eagle server (httpx), used by the ``eagle campaign|agents|latbench`` commands.

Where it finds things: the server URL from the caller, else ``EAGLE_SERVER_URL``, else
http://127.0.0.1:8000; the API key (writes only) from the caller, else ``EAGLE_API_KEY``, else the file a
local ``eagle serve`` wrote in its workdir (``EAGLE_WORKDIR``, default ``./var``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from eagle_server.settings import Settings

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
SERVER_URL_ENV = "EAGLE_SERVER_URL"
API_KEY_HEADER = "X-API-Key"  # REST writes carry the server's key in this header
API_KEY_FILE = "api_key"  # where `eagle serve` keeps a generated key, under its workdir
EXPORT_ID_HEADER = "X-Eagle-Export-Id"


def api_key_path(workdir: str | Path) -> Path:
    return Path(workdir) / API_KEY_FILE


def read_api_key_file(workdir: str | Path) -> str | None:
    """The key a server stored in ``workdir`` (None when there is none)."""
    try:
        key = api_key_path(workdir).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return key or None


class ApiError(Exception):
    """The server said no (``status`` > 0, ``detail`` is its message) or could not be reached (status 0)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def resolve_server_url(given: str | None = None) -> str:
    url = (given or os.environ.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url


def resolve_api_key(given: str | None = None, settings: Settings | None = None) -> str | None:
    if given:
        return given
    settings = settings or Settings()
    return settings.api_key or read_api_key_file(settings.workdir)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail) if detail is not None else str(body)[:500]


class EagleClient:
    """Thin wrappers over the ``/v1`` endpoints; every method raises :class:`ApiError` on failure."""

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.base_url = resolve_server_url(server)
        self._settings = settings
        self._api_key = api_key
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EagleClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------------
    def _write_headers(self) -> dict[str, str]:
        key = resolve_api_key(self._api_key, self._settings)
        if not key:
            workdir = (self._settings or Settings()).workdir
            raise ApiError(
                0,
                "this command changes data on the server and needs its API key: pass --api-key, set "
                f"EAGLE_API_KEY, or run it where `eagle serve` keeps {api_key_path(workdir)}",
            )
        return {API_KEY_HEADER: key}

    def request(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **(self._write_headers() if write else {})}
        try:
            response = self._http.request(method, "/v1" + path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, self._unreachable(exc)) from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return response

    def _unreachable(self, exc: Exception) -> str:
        return (
            f"cannot reach the Eagle server at {self.base_url} ({exc}); is `eagle serve` running there? "
            f"(choose the server with --server or {SERVER_URL_ENV})"
        )

    def _json(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
        return self.request(method, path, write=write, **kwargs).json()

    # -- resources ----------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/health"))

    def devices(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/devices"))

    def agents(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/agents"))

    def create_token(self, note: str = "") -> dict[str, Any]:
        return dict(self._json("POST", "/agents/tokens", write=True, json={"note": note}))

    def submit_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._json("POST", "/campaigns", write=True, json=body))

    def campaign(self, campaign_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/campaigns/{int(campaign_id)}"))

    def campaigns(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        return dict(self._json("GET", "/campaigns", params=params))

    def cancel_campaign(self, campaign_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/campaigns/{int(campaign_id)}/cancel", write=True))

    def measurements(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        return dict(self._json("GET", "/measurements", params=params))

    def export_release(
        self,
        out: Path,
        devices: Iterable[str] | None = None,
        version: str | None = None,
        on_bytes: Callable[[int, int | None], None] | None = None,
    ) -> dict[str, Any]:
        """Download a release CSV to ``out`` and return its sidecar (checked against the CSV's SHA-256).

        The CSV is written to ``out`` + ``.part`` and renamed at the end, so ``out`` is never half a file.
        """
        params: dict[str, Any] = {}
        if devices:
            params["devices"] = ",".join(devices)
        if version:
            params["version"] = version
        out = Path(out)
        part = out.with_name(out.name + ".part")
        digest = hashlib.sha256()
        try:
            with self._http.stream("GET", "/v1/latbench/export", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _detail(response))
                export_id = response.headers.get(EXPORT_ID_HEADER, "")
                total = int(response.headers["content-length"]) if "content-length" in response.headers else None
                done = 0
                with part.open("wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if on_bytes is not None:
                            on_bytes(done, total)
        except httpx.TransportError as exc:
            part.unlink(missing_ok=True)
            raise ApiError(0, self._unreachable(exc)) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        sidecar = dict(self._json("GET", "/latbench/export/sidecar", params={"export_id": export_id}))
        expected = sidecar.get("csv", {}).get("sha256")
        if expected and expected != digest.hexdigest():
            part.unlink(missing_ok=True)
            raise ApiError(0, "the downloaded CSV does not match its sidecar's SHA-256 (transfer cut?): try again")
        part.replace(out)
        return sidecar

    def import_release(
        self, csv_path: Path, sidecar_path: Path | None = None, provenance: str | None = None
    ) -> dict[str, Any]:
        with Path(csv_path).open("rb") as csv_file:
            files: dict[str, Any] = {"file": (Path(csv_path).name, csv_file, "text/csv")}
            if sidecar_path is not None:
                files["sidecar"] = (Path(sidecar_path).name, Path(sidecar_path).read_bytes(), "application/json")
            data = {"provenance": provenance} if provenance else None
            return dict(self._json("POST", "/latbench/import", write=True, files=files, data=data))
