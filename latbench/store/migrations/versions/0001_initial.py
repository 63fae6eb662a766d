"""Initial schema: every table of the LatBench store.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "agent_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=256), nullable=False),
        _time("created_at"),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agent_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_agent_tokens_token_hash"),
    )
    op.create_table(
        "architectures",
        sa.Column("arch_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("arch_str", sa.String(length=128), nullable=False),
        sa.Column("op_code", sa.String(length=6), nullable=False),
        sa.Column("canonical_key", sa.String(length=32), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("arch_index", name="pk_architectures"),
        sa.UniqueConstraint("arch_str", name="uq_architectures_arch_str"),
        sa.UniqueConstraint("op_code", name="uq_architectures_op_code"),
    )
    op.create_index("ix_architectures_canonical_key", "architectures", ["canonical_key"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("device_class", sa.String(length=64), nullable=False),
        sa.Column("hardware", sa.String(length=256), nullable=False),
        sa.Column("precision", sa.String(length=32), nullable=False),
        sa.Column("runtime", sa.String(length=128), nullable=True),
        sa.Column("host", sa.JSON(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("name", name="uq_devices_name"),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        _time("created_at"),
        sa.Column("sidecar", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint("version", name="uq_releases_version"),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("hostname", sa.String(length=128), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("backend_check", sa.JSON(), nullable=True),
        _time("registered_at"),
        _time("last_heartbeat"),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_agents_device_id_devices"),
        sa.ForeignKeyConstraint(["token_id"], ["agent_tokens.id"], name="fk_agents_token_id_agent_tokens"),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
    )
    op.create_index("ix_agents_device_id", "agents", ["device_id"])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("runtime", sa.String(length=128), nullable=False),
        sa.Column("precision", sa.String(length=32), nullable=False),
        sa.Column("protocol", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dedupe", sa.Boolean(), nullable=False),
        _time("created_at"),
        _time("finished_at", nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_campaigns_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
    )
    op.create_index("ix_campaigns_device_id", "campaigns", ["device_id"])
    op.create_index("ix_campaigns_state", "campaigns", ["state"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("arch_index", sa.Integer(), nullable=False),
        sa.Column("canonical_key", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("requirement", sa.String(length=128), nullable=False),
        sa.Column("queue_rank", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(length=36), nullable=True),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        _time("lease_expires_at", nullable=True),
        _time("leased_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_class", sa.String(length=32), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(["arch_index"], ["architectures.arch_index"], name="fk_jobs_arch_index_architectures"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name="fk_jobs_campaign_id_campaigns"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_jobs_device_id_devices"),
        sa.ForeignKeyConstraint(["lease_owner"], ["agents.id"], name="fk_jobs_lease_owner_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_lease", "jobs", ["device_id", "state", "queue_rank", "id"])
    op.create_index("ix_jobs_state_lease_expires_at", "jobs", ["state", "lease_expires_at"])
    op.create_index("ix_jobs_campaign_id_state", "jobs", ["campaign_id", "state"])
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("arch_index", sa.Integer(), nullable=False),
        sa.Column("canonical_key", sa.String(length=32), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("raw_ms", sa.JSON(), nullable=True),
        sa.Column("runtime", sa.String(length=128), nullable=True),
        sa.Column("precision", sa.String(length=32), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=True),
        sa.Column("agent_id", sa.String(length=36), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("lease_id", sa.String(length=36), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("provenance", sa.String(length=128), nullable=False),
        _time("measured_at"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_measurements_agent_id_agents"),
        sa.ForeignKeyConstraint(
            ["arch_index"], ["architectures.arch_index"], name="fk_measurements_arch_index_architectures"
        ),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name="fk_measurements_campaign_id_campaigns"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_measurements_device_id_devices"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_measurements_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
        sa.UniqueConstraint("job_id", name="uq_measurements_job_id"),
    )
    op.create_index("ix_measurements_campaign_id", "measurements", ["campaign_id"])
    op.create_index("ix_measurements_device_id_arch_index", "measurements", ["device_id", "arch_index"])
    op.create_index("ix_measurements_device_id_canonical_key", "measurements", ["device_id", "canonical_key"])
    op.create_index("ix_measurements_provenance", "measurements", ["provenance"])


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes.
    for table in (
        "measurements",
        "jobs",
        "campaigns",
        "agents",
        "releases",
        "devices",
        "architectures",
        "agent_tokens",
    ):
        op.drop_table(table)
