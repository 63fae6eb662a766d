"""Where a search gets latencies from: one interface, measured and predicted implementations.

Every source answers :meth:`LatencySource.latency_ms` for many NB201 indices at once (a float64 array,
NaN where there is no latency: invalid cells, models never measured). Searches ask for all the
candidates they will filter in one call, so scoring thousands of models is one predictor batch or one
HTTP request.

* :class:`TableLatency` — measured: the shipped LatBench table (``latbench.data.load_latency``).
* :class:`StoreLatency` — measured: the newest measurement per index in the LatBench SQL store.
* :class:`ArrayLatency` — any precomputed per-index array (e.g. predictions made once for many runs).
* :class:`PredictorLatency` — in process: any object with ``predict(adjacency, features) -> ms``
  (``predictors.latency.LatencyPredictor`` and the baselines), fed the GCN encodings.
* :class:`RestLatency` — the server's batch prediction endpoint (``eagle search --server URL``).

REST wire contract (``POST {server}/v1/predict``)::

    request:  {"device": "<device name>", "archs": [<NB201 index>, ...]}
    response: {"predictions": [{"index": i, "latency_ms": <float> | null, "valid": <bool>, ...}, ...],
               "predictor_version": <any>}

Every requested index must come back exactly once; ``latency_ms`` is null for an invalid cell. Extra
fields are ignored. Errors are JSON with a ``detail`` or ``message`` field, which is shown to the user.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from search.space import Space, nb201_space

Indices = Sequence[int] | np.ndarray


class LatencySourceError(RuntimeError):
    """A latency source that cannot answer: unknown device, unreachable server, malformed reply."""


@runtime_checkable
class LatencySource(Protocol):
    """Latency (ms) of NB201 indices; NaN where there is none."""

    name: str

    def latency_ms(self, indices: Indices) -> np.ndarray: ...


class _Memoised:
    """Shared logic: check indices, answer NaN for invalid cells, fetch each valid index at most once."""

    name: str

    def __init__(self, space: Space | None = None) -> None:
        self.space = space or nb201_space()
        self._cache = np.full(self.space.size, np.nan)
        self._known = np.zeros(self.space.size, dtype=bool)
        self.requests = 0  # fetches made (predictor batches or HTTP requests): what batching saves

    def latency_ms(self, indices: Indices) -> np.ndarray:
        idx = self.space.check_indices(indices)
        todo = np.unique(idx[~self._known[idx]])
        todo_valid = todo[self.space.valid[todo]]
        if todo_valid.size:
            values = np.asarray(self._fetch(todo_valid), dtype=np.float64).reshape(-1)
            if values.shape[0] != todo_valid.shape[0]:
                raise LatencySourceError(
                    f"{self.name}: got {values.shape[0]} latencies for {todo_valid.shape[0]} archs"
                )
            self._cache[todo_valid] = values
        self._known[todo] = True
        return self._cache[idx].copy()

    def _fetch(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ArrayLatency:
    """A precomputed latency per index (length 15,625); NaN where none."""

    def __init__(self, values: np.ndarray, name: str = "array", space: Space | None = None) -> None:
        self.space = space or nb201_space()
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.shape[0] != self.space.size:
            raise ValueError(f"{name}: need one latency per NB201 index ({self.space.size}), got {arr.shape[0]}")
        if np.any(arr[np.isfinite(arr)] <= 0):
            raise ValueError(f"{name}: latencies must be positive milliseconds")
        self.values = arr
        self.name = name

    def latency_ms(self, indices: Indices) -> np.ndarray:
        return self.values[self.space.check_indices(indices)].copy()


class TableLatency(ArrayLatency):
    """Measured latencies of one device from the shipped LatBench table (or a table given)."""

    def __init__(self, device: str, table: Any | None = None, space: Space | None = None) -> None:
        from latbench.data import load_latency

        table = table if table is not None else load_latency()
        try:
            column = table.column(device)
        except ValueError as exc:
            raise LatencySourceError(str(exc)) from None
        super().__init__(np.asarray(column, dtype=np.float64), name=f"measured:{device}", space=space)
        self.device = device


class StoreLatency(ArrayLatency):
    """Measured latencies of one device from the LatBench SQL store: the newest measurement per index.

    Takes a SQLAlchemy session factory (``latbench.store.open_store(url)``); reads once, at creation.
    """

    def __init__(self, session_factory: Any, device: str, space: Space | None = None) -> None:
        from sqlalchemy import select

        from latbench.store.models import Device, Measurement

        space = space or nb201_space()
        values = np.full(space.size, np.nan)
        with session_factory() as session:
            if session.scalar(select(Device.id).where(Device.name == device)) is None:
                known = ", ".join(session.scalars(select(Device.name).order_by(Device.name))) or "none"
                raise LatencySourceError(f"device {device!r} is not in the store; known devices: {known}")
            rows = session.execute(
                select(Measurement.arch_index, Measurement.latency_ms)
                .join(Device, Device.id == Measurement.device_id)
                .where(Device.name == device)
                .order_by(Measurement.measured_at, Measurement.id)
            )
            for index, latency in rows:  # ordered oldest first: the newest wins
                values[index] = latency
        super().__init__(values, name=f"store:{device}", space=space)
        self.device = device


class PredictorLatency(_Memoised):
    """In-process predictor: anything with ``predict(adjacency (B,9,9), features (B,9,6)) -> ms (B,)``."""

    def __init__(self, predictor: Any, name: str = "predictor", space: Space | None = None) -> None:
        if not callable(getattr(predictor, "predict", None)):
            raise TypeError(f"{name}: a latency predictor needs a predict(adjacency, features) method")
        super().__init__(space)
        self.predictor = predictor
        self.name = name

    def _fetch(self, indices: np.ndarray) -> np.ndarray:
        self.requests += 1
        enc = self.space.encodings
        return np.asarray(self.predictor.predict(enc.adjacency[indices], enc.features[indices]), dtype=np.float64)


class RestLatency(_Memoised):
    """The server's batch prediction endpoint; one request per ``batch_size`` unseen valid indices.

    ``client`` is an ``httpx.Client`` (a FastAPI ``TestClient`` works too); by default one is made for
    ``server``. The API key, if any, goes in ``X-API-Key`` (default: ``EAGLE_API_KEY``).
    """

    PATH = "/v1/predict"

    def __init__(
        self,
        server: str,
        device: str,
        client: Any | None = None,
        batch_size: int = 20_000,
        timeout_s: float = 60.0,
        api_key: str | None = None,
        space: Space | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(space)
        self.server = server.rstrip("/")
        self.device = device
        self.batch_size = batch_size
        self.name = f"rest:{self.server}:{device}"
        self.predictor_version: Any = None
        self._headers = {}
        key = api_key if api_key is not None else os.environ.get("EAGLE_API_KEY")
        if key:
            self._headers["X-API-Key"] = key
        if client is None:
            import httpx

            client = httpx.Client(base_url=self.server, timeout=timeout_s)
            self._url = self.PATH
        else:  # a given client may or may not have a base URL; a full URL works for both
            self._url = f"{self.server}{self.PATH}" if self.server else self.PATH
        self.client = client

    def _fetch(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty(indices.shape[0])
        for start in range(0, indices.shape[0], self.batch_size):
            chunk = indices[start : start + self.batch_size]
            out[start : start + chunk.shape[0]] = self._request(chunk)
        return out

    def _request(self, chunk: np.ndarray) -> np.ndarray:
        import httpx

        self.requests += 1
        body = {"device": self.device, "archs": [int(i) for i in chunk]}
        try:
            reply = self.client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise LatencySourceError(f"cannot reach {self.server}{self.PATH}: {exc}") from None
        if reply.status_code != 200:
            raise LatencySourceError(f"{self.server}{self.PATH} answered {reply.status_code}: {_error_text(reply)}")
        try:
            payload = reply.json()
        except ValueError:
            raise LatencySourceError(f"{self.server}{self.PATH} did not answer JSON") from None
        return self._parse(payload, chunk)

    def _parse(self, payload: Any, chunk: np.ndarray) -> np.ndarray:
        where = f"{self.server}{self.PATH}"
        if not isinstance(payload, dict) or not isinstance(payload.get("predictions"), list):
            raise LatencySourceError(f"{where}: reply has no 'predictions' list")
        self.predictor_version = payload.get("predictor_version")
        wanted = {int(i): k for k, i in enumerate(chunk)}
        out = np.full(chunk.shape[0], np.nan)
        seen: set[int] = set()
        for item in payload["predictions"]:
            if not isinstance(item, dict) or not isinstance(item.get("index"), int):
                raise LatencySourceError(f"{where}: a prediction without an integer 'index': {item!r}")
            index = item["index"]
            if index not in wanted or index in seen:
                raise LatencySourceError(f"{where}: prediction for index {index}, which was not asked or came twice")
            seen.add(index)
            value = item.get("latency_ms")
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise LatencySourceError(f"{where}: index {index} has latency_ms {value!r}, not a positive number")
            out[wanted[index]] = float(value)
        missing = [i for i in wanted if i not in seen]
        if missing:
            raise LatencySourceError(f"{where}: no prediction for {len(missing)} index(es), e.g. {missing[:5]}")
        return out


def _error_text(reply: Any) -> str:
    try:
        payload = reply.json()
    except ValueError:
        return reply.text[:200] or "(empty body)"
    if isinstance(payload, dict):
        for key in ("detail", "message", "error"):
            if key in payload:
                return str(payload[key])
    return str(payload)[:200]
