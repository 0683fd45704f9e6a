"""webhookendpoint, webhookevent, webhookdelivery: outgoing webhooks (an outbox and its
deliveries)

Revision ID: 0005_webhooks
Revises: 0002_user_session_version
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_webhooks"
down_revision: str | None = "0004_tenant_bounds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "webhookendpoint",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("url", _str(length=2000), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("description", _str(length=200), nullable=False),
        sa.Column("secret_enc", _str(length=500), nullable=False),
        sa.Column("created_by", _str(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhookevent",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("type", _str(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhookevent", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhookevent_pending", ["dispatched_at", "created_at"], unique=False
        )
    op.create_table(
        "webhookdelivery",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("endpoint_id", _str(length=32), nullable=False),
        sa.Column("event_id", _str(length=32), nullable=False),
        sa.Column("event_type", _str(length=64), nullable=False),
        sa.Column("status", _str(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", _str(length=64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", _str(length=500), nullable=False),
        sa.Column("attempt_log", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhookendpoint.id"]),
        sa.ForeignKeyConstraint(["event_id"], ["webhookevent.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhookdelivery", schema=None) as batch_op:
        batch_op.create_index("ix_webhookdelivery_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_webhookdelivery_endpoint", ["endpoint_id", "created_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("webhookdelivery")
    op.drop_table("webhookevent")
    op.drop_table("webhookendpoint")
