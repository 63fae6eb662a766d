"""``GET /v1/health``: is the server up, on which database and schema, and how busy."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from eagle_server.deps import SessionDep, SettingsDep
from eagle_server.routers.agents import list_agents
from eagle_server.schemas import Health
from latbench import __version__
from latbench.store.db import current_revision
from latbench.store.models import OPEN_JOB_STATES, Job

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(session: SessionDep, settings: SettingsDep) -> Health:
    engine = session.get_bind()
    depth = session.scalar(select(func.count()).select_from(Job).where(Job.state.in_(OPEN_JOB_STATES)))
    online = sum(1 for agent in list_agents(session, settings) if agent.state == "online")
    return Health(
        status="ok",
        version=__version__,
        db_backend=engine.dialect.name,
        schema_revision=current_revision(engine.engine),
        agents_online=online,
        queue_depth=int(depth or 0),
        grpc_address=settings.grpc_address,
    )
