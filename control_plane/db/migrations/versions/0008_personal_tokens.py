"""personaltoken: personal access tokens for scripts (``opat_…``, stored as SHA-256 hashes)

Revision ID: 0008_personal_tokens
Revises: 0007_instance_contract
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008_personal_tokens"
down_revision: str | None = "0007_instance_contract"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "personaltoken",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("user_id", _text(32), nullable=False),
        sa.Column("name", _text(100), nullable=False),
        sa.Column("token_hash", _text(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("all_orgs", sa.Boolean(), nullable=False),
        sa.Column("org_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("personaltoken") as batch:
        batch.create_index(batch.f("ix_personaltoken_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("personaltoken")
