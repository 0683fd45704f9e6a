"""Passkeys: WebAuthn credentials per user, and the challenges of their ceremonies

Revision ID: 0018_passkeys
Revises: 0016_identity_providers
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018_passkeys"
down_revision: str | None = "0016_identity_providers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "passkey",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("user_id", _str(length=32), nullable=False),
        sa.Column("credential_id", _str(length=1400), nullable=False),
        sa.Column("public_key", _str(length=2000), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", _str(length=200), nullable=False),
        sa.Column("name", _str(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
    )
    with op.batch_alter_table("passkey") as batch:
        batch.create_index(batch.f("ix_passkey_user_id"), ["user_id"], unique=False)
    op.create_table(
        "passkeychallenge",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("challenge_hash", _str(length=64), nullable=False),
        sa.Column("user_id", _str(length=32), nullable=False),
        sa.Column("purpose", _str(length=16), nullable=False),
        sa.Column("binding", _str(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("challenge_hash"),
    )
    with op.batch_alter_table("passkeychallenge") as batch:
        batch.create_index(batch.f("ix_passkeychallenge_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("passkeychallenge")
    op.drop_table("passkey")
