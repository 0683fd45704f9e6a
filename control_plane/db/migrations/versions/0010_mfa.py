"""MFA: the user's TOTP secret (encrypted) and last used step, recovery codes (hashed),
``amr`` of refresh-token families and personal access tokens, and ``org.require_mfa``

Existing sessions and personal access tokens were made with a password only (``amr`` "pwd").

Revision ID: 0010_mfa
Revises: 0009_fleet_rollouts
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_mfa"
down_revision: str | None = "0009_fleet_rollouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(
            sa.Column("totp_secret_enc", _str(length=500), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("totp_last_step", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("org") as batch:
        batch.add_column(
            sa.Column("require_mfa", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    for table in ("refreshtoken", "personaltoken"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("amr", _str(length=40), nullable=False, server_default="pwd")
            )
    op.create_table(
        "recoverycode",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("user_id", _str(length=32), nullable=False),
        sa.Column("code_hash", _str(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("recoverycode") as batch:
        batch.create_index(batch.f("ix_recoverycode_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("recoverycode")
    for table in ("personaltoken", "refreshtoken"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("amr")
    with op.batch_alter_table("org") as batch:
        batch.drop_column("require_mfa")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_enabled_at")
        batch.drop_column("totp_secret_enc")
