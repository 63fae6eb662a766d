"""The LatBench SQL store: schema, migrations, the persistent job queue, agent tokens and CSV releases.

Needs the ``server`` extra (SQLAlchemy, Alembic, psycopg). Typical use::

    from latbench.store import open_store, queue
    Session = open_store("sqlite:///var/eagle.db")      # migrates to the latest schema
    with Session() as session:
        campaign = queue.submit_campaign(session, "local", [0, 1, 2])
"""

from latbench.store.db import default_db_url, make_engine, open_store, session_factory, upgrade
from latbench.store.devices import UnknownDevice
from latbench.store.models import (
    Agent,
    AgentToken,
    Architecture,
    Base,
    Campaign,
    CampaignState,
    Device,
    Job,
    JobState,
    Measurement,
    Release,
)
from latbench.store.tokens import AuthError, create_agent_token, revoke_token, verify_token

__all__ = [
    "Agent",
    "AgentToken",
    "Architecture",
    "AuthError",
    "Base",
    "Campaign",
    "CampaignState",
    "Device",
    "Job",
    "JobState",
    "Measurement",
    "Release",
    "UnknownDevice",
    "create_agent_token",
    "default_db_url",
    "make_engine",
    "open_store",
    "revoke_token",
    "session_factory",
    "upgrade",
    "verify_token",
]
