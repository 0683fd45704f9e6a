"""instanceversion, rollout, rolloutorg, maintenancewindow; instance.assigned_image

Instance versions and staged rollouts (control_plane/fleet, docs/rollouts.md). Existing orgs
get no assigned image, so nothing they run changes.

It follows 0011_org_search (merged first, after 0010_mfa and 0008): a database already at 0011
takes this one next.

Revision ID: 0009_fleet_rollouts
Revises: 0008_personal_tokens
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009_fleet_rollouts"
down_revision: str | None = "0008_personal_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _ts(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("instance") as batch:
        batch.add_column(
            sa.Column("assigned_image", _text(300), nullable=False, server_default="")
        )
    op.create_table(
        "instanceversion",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("name", _text(64), nullable=False),
        sa.Column("image", _text(300), nullable=False),
        sa.Column("repository", _text(300), nullable=False),
        sa.Column("tag", _text(128), nullable=False),
        sa.Column("digest", _text(71), nullable=False),
        sa.Column("notes", _text(2000), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("created_by", _text(32), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("image"),
    )
    op.create_table(
        "rollout",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("from_version_id", _text(32), nullable=True),
        sa.Column("to_version_id", _text(32), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("waves", sa.JSON(), nullable=False),
        sa.Column("wave_count", sa.Integer(), nullable=False),
        sa.Column("current_wave", sa.Integer(), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=False),
        sa.Column("health_deadline_seconds", sa.Integer(), nullable=False),
        sa.Column("failure_threshold", sa.Float(), nullable=False),
        sa.Column("on_older_schema", _text(16), nullable=False),
        sa.Column("failures_accepted", sa.Integer(), nullable=False),
        sa.Column("state", _text(16), nullable=False),
        sa.Column("reason", _text(1000), nullable=False),
        sa.Column("created_by", _text(32), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
        sa.Column("lease_owner", _text(64), nullable=False),
        _ts("lease_expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rollout") as batch:
        batch.create_index(batch.f("ix_rollout_state"), ["state"], unique=False)
    op.create_table(
        "rolloutorg",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", _text(32), nullable=False),
        sa.Column("org_id", _text(32), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=True),
        sa.Column("state", _text(16), nullable=False),
        sa.Column("from_image", _text(300), nullable=False),
        sa.Column("backup_id", _text(32), nullable=False),
        sa.Column("reverted", sa.Boolean(), nullable=False),
        sa.Column("reason", _text(1000), nullable=False),
        _ts("started_at", nullable=True),
        _ts("deadline_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"]),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollout.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rollout_id", "org_id", name="uq_rolloutorg_rollout_org"),
    )
    with op.batch_alter_table("rolloutorg") as batch:
        batch.create_index(
            "ix_rolloutorg_rollout_wave_state", ["rollout_id", "wave", "state"], unique=False
        )
    op.create_table(
        "maintenancewindow",
        sa.Column("org_id", _text(32), nullable=False),
        sa.Column("weekdays", sa.JSON(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )


def downgrade() -> None:
    op.drop_table("maintenancewindow")
    op.drop_table("rolloutorg")
    op.drop_table("rollout")
    op.drop_table("instanceversion")
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("assigned_image")
