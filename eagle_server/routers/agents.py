"""``/v1/agents``: the agents that registered (live state, capabilities, backend check) and their tokens."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from eagle_server.deps import ApiKeyDep, SessionDep, SettingsDep
from eagle_server.schemas import AgentOut, TokenCreate, TokenOut
from eagle_server.settings import Settings
from latbench.store.models import Agent, AgentState, Job, JobState, utcnow
from latbench.store.tokens import create_agent_token

router = APIRouter(prefix="/agents", tags=["agents"])


def list_agents(session: Session, settings: Settings) -> list[AgentOut]:
    """Every agent; one silent for longer than a lease counts as offline (its job would be requeued)."""
    now = utcnow()
    leased = dict(
        session.execute(
            select(Job.lease_owner, func.count()).where(Job.state == JobState.LEASED.value).group_by(Job.lease_owner)
        ).all()
    )
    out = []
    for agent in session.scalars(select(Agent).order_by(Agent.registered_at, Agent.id)):
        silent_s = (now - agent.last_heartbeat).total_seconds()
        online = agent.state == AgentState.ONLINE.value and silent_s <= settings.lease_s
        out.append(
            AgentOut(
                id=agent.id,
                device=agent.device.name,
                hostname=agent.hostname,
                capabilities=[str(c) for c in agent.capabilities],
                backend_check=agent.backend_check,
                registered_at=agent.registered_at,
                last_heartbeat=agent.last_heartbeat,
                state="online" if online else "offline",
                leased_jobs=int(leased.get(agent.id, 0)),
            )
        )
    return out


@router.get("", response_model=list[AgentOut])
def get_agents(session: SessionDep, settings: SettingsDep) -> list[AgentOut]:
    return list_agents(session, settings)


@router.post("/tokens", response_model=TokenOut, status_code=status.HTTP_201_CREATED)
def create_token(_: ApiKeyDep, session: SessionDep, body: TokenCreate | None = None) -> TokenOut:
    """A new agent token; its plaintext is in this response only."""
    note = body.note if body else ""
    return TokenOut(token=create_agent_token(session, note), note=note)
