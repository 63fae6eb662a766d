"""Predictor registry: predictor versions and their artifact files.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "predictor_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("train_count", sa.Integer(), nullable=False),
        sa.Column("train_hash", sa.String(length=64), nullable=False),
        sa.Column("train_indices", sa.JSON(), nullable=True),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("artifact", sa.String(length=512), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("measurement_count", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _time("finished_at", nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_predictor_versions_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_predictor_versions"),
        sa.UniqueConstraint("device_id", "kind", "version", name="uq_predictor_versions_device_id_kind_version"),
    )
    op.create_index("ix_predictor_versions_device_id_kind_state", "predictor_versions", ["device_id", "kind", "state"])
    op.create_table(
        "predictor_files",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["predictor_versions.id"],
            name="fk_predictor_files_version_id_predictor_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name="pk_predictor_files"),
    )


def downgrade() -> None:
    op.drop_table("predictor_files")
    op.drop_table("predictor_versions")
