"""identity_provider, identity_link, claim_rule; org.require_sso; membership.source

Sign-in through external identity providers (issue 24: control_plane/sso, docs/identity.md).
Existing memberships get source "" (granted in orgplane); no org requires SSO.

Revision ID: 0016_identity_providers
Revises: 0015_rollout_previous_assignment
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016_identity_providers"
down_revision: str | None = "0015_rollout_previous_assignment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "identity_provider",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("slug", _text(40), nullable=False),
        sa.Column("display_name", _text(100), nullable=False),
        sa.Column("kind", _text(40), nullable=False),
        sa.Column("discovery_url", _text(2000), nullable=False),
        sa.Column("client_id", _text(300), nullable=False),
        sa.Column("client_secret_enc", _text(2000), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("allowed_domains", sa.JSON(), nullable=False),
        sa.Column("jit", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_provider") as batch:
        batch.create_index(batch.f("ix_identity_provider_slug"), ["slug"], unique=True)
    op.create_table(
        "identity_link",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("provider_id", _text(32), nullable=False),
        sa.Column("subject", _text(255), nullable=False),
        sa.Column("user_id", _text(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["provider_id"], ["identity_provider.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_id", "subject", name="uq_identity_link_provider_subject"),
    )
    with op.batch_alter_table("identity_link") as batch:
        batch.create_index(batch.f("ix_identity_link_provider_id"), ["provider_id"], unique=False)
        batch.create_index(batch.f("ix_identity_link_user_id"), ["user_id"], unique=False)
    op.create_table(
        "claim_rule",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("provider_id", _text(32), nullable=False),
        sa.Column("claim", _text(200), nullable=False),
        sa.Column("value", _text(300), nullable=False),
        sa.Column("org_id", _text(32), nullable=False),
        sa.Column("role", _text(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"]),
        sa.ForeignKeyConstraint(["provider_id"], ["identity_provider.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("claim_rule") as batch:
        batch.create_index(batch.f("ix_claim_rule_org_id"), ["org_id"], unique=False)
        batch.create_index(batch.f("ix_claim_rule_provider_id"), ["provider_id"], unique=False)
    with op.batch_alter_table("org") as batch:
        batch.add_column(
            sa.Column("require_sso", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("membership") as batch:
        batch.add_column(sa.Column("source", _text(40), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("membership") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("org") as batch:
        batch.drop_column("require_sso")
    op.drop_table("claim_rule")
    op.drop_table("identity_link")
    op.drop_table("identity_provider")
