"""email: the outbox, one-time email links, known devices and user.email_verified_at

Existing users count as verified (they were made by a platform admin, at bootstrap, or signed
up before verification existed).

Revision ID: 0006_mail
Revises: 0002_user_session_version
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_mail"
down_revision: str | None = "0005_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text('UPDATE "user" SET email_verified_at = created_at'))

    op.create_table(
        "outboxmail",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("kind", _text(32), nullable=False),
        sa.Column("recipient", _text(320), nullable=False),
        sa.Column("message_enc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", _text(500), nullable=False),
        sa.Column("lease_owner", _text(64), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outboxmail") as batch:
        batch.create_index(
            "ix_outboxmail_due", ["sent_at", "failed_at", "next_attempt_at"], unique=False
        )

    op.create_table(
        "emailtoken",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("user_id", _text(32), nullable=False),
        sa.Column("purpose", _text(16), nullable=False),
        sa.Column("email", _text(320), nullable=False),
        sa.Column("token_hash", _text(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("emailtoken") as batch:
        batch.create_index(batch.f("ix_emailtoken_user_id"), ["user_id"], unique=False)

    op.create_table(
        "userdevice",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("user_id", _text(32), nullable=False),
        sa.Column("fingerprint", _text(64), nullable=False),
        sa.Column("user_agent", _text(300), nullable=False),
        sa.Column("network", _text(64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "fingerprint", name="uq_userdevice_user_fp"),
    )
    with op.batch_alter_table("userdevice") as batch:
        batch.create_index(batch.f("ix_userdevice_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("userdevice")
    op.drop_table("emailtoken")
    op.drop_table("outboxmail")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("email_verified_at")
