"""oauthclient, authorizationcode: registered OAuth clients and single-use authorization codes

Revision ID: 0013_oauth_clients
Revises: 0012_backup_keys
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013_oauth_clients"
down_revision: str | None = "0012_backup_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "oauthclient",
        sa.Column("id", _text(64), nullable=False),
        sa.Column("name", _text(100), nullable=False),
        sa.Column("client_type", _text(20), nullable=False),
        sa.Column("secret_hash", _text(64), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_by", _text(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "authorizationcode",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("code_hash", _text(64), nullable=False),
        sa.Column("client_id", _text(64), nullable=False),
        sa.Column("user_id", _text(32), nullable=False),
        sa.Column("redirect_uri", _text(2000), nullable=False),
        sa.Column("scope", _text(500), nullable=False),
        sa.Column("nonce", _text(500), nullable=False),
        sa.Column("code_challenge", _text(128), nullable=False),
        sa.Column("session_id", _text(32), nullable=False),
        sa.Column("amr", _text(40), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_jti", _text(64), nullable=False),
        sa.Column("issued_exp", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("authorizationcode") as batch:
        batch.create_index(batch.f("ix_authorizationcode_client_id"), ["client_id"], unique=False)
        batch.create_index(batch.f("ix_authorizationcode_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("authorizationcode")
    op.drop_table("oauthclient")
