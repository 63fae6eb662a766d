"""Server fixtures: a migrated store (SQLite and PostgreSQL), the app on it via TestClient, seed data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from eagle_server.app import create_app
from eagle_server.settings import Settings
from latbench.store import queue
from latbench.store.archs import architecture_rows
from latbench.store.db import make_engine, session_factory, upgrade
from latbench.store.devices import ensure_device
from latbench.store.models import (
    Agent,
    AgentToken,
    Architecture,
    Campaign,
    Device,
    Job,
    Measurement,
    Release,
)
from latbench.store.tokens import create_agent_token

API_KEY = "test-key-0123456789"
AUTH = {"X-API-Key": API_KEY}
DESKTOP = "desktop_cpu_test_box_fp32"
PHONE = "mobile_gpu_test_phone_int8"
CAPS = ["litert:fp32", "tf:fp32"]
TABLES = (Device, Agent, AgentToken, Architecture, Campaign, Job, Measurement, Release)


def equivalent_pair() -> tuple[int, int]:
    """Two valid indices with the same canonical graph."""
    first: dict[str, int] = {}
    for row in architecture_rows():
        if row["valid"]:
            if row["canonical_key"] in first:
                return first[row["canonical_key"]], row["index"]
            first[row["canonical_key"]] = row["index"]
    raise AssertionError("NB201 has equivalent cells")


def snapshot(factory: sessionmaker[Session]) -> dict[str, int]:
    """Row counts of every table (and the job states): equal before and after a refused request."""
    with factory() as session:
        counts = {t.__tablename__: int(session.scalar(select(func.count()).select_from(t)) or 0) for t in TABLES}
        for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state)):
            counts[f"jobs.{state}"] = int(n)
        for state, n in session.execute(select(Campaign.state, func.count()).group_by(Campaign.state)):
            counts[f"campaigns.{state}"] = int(n)
        return counts


@dataclass
class Server:
    client: TestClient
    factory: sessionmaker[Session]
    engine: Engine
    settings: Settings

    def session(self) -> Session:
        return self.factory()

    def measure(self, device: str, indices: list[int], latency_ms: float = 1.5) -> int:
        """Queue ``indices`` on ``device``, then lease and report each as a registered agent would.

        Returns the campaign id.
        """
        with self.factory() as s:
            token = create_agent_token(s, "seed")
            agent_id = queue.register_agent(s, token, device, "seed-host", CAPS, {"ok": True})
            campaign = queue.submit_campaign(s, device, indices, protocol={"runs": 20}, dedupe=False)
            for k in range(len(indices)):
                job = queue.lease_job(s, agent_id, device, CAPS)
                assert job is not None
                outcome = queue.report_result(
                    s,
                    job.job_id,
                    job.lease_id,
                    agent_id,
                    latency_ms + k,
                    {"runs": 20},
                    [latency_ms] * 20,
                    {"litert": "test"},
                    "litert",
                    "fp32",
                )
                assert outcome == queue.ReportOutcome.ACCEPTED
            return campaign.id


@pytest.fixture
def server(db_url: str) -> Iterator[Server]:
    engine = make_engine(db_url)
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s:
        ensure_device(s, DESKTOP, hardware="test box")
        ensure_device(s, PHONE, hardware="test phone")
        s.commit()
    settings = Settings(db_url=db_url, api_key=API_KEY, import_latbench_on_start=False)
    app = create_app(settings, factory)
    with TestClient(app) as client:
        yield Server(client=client, factory=factory, engine=engine, settings=settings)
    engine.dispose()
