"""org_branding, org_logo: an org's display name, colour, contact, metadata and logo

Branding and metadata of issue 27 (control_plane/branding, docs/branding.md). Existing orgs get
no row: they show their name, and inherit whatever a parent sets.

Revision ID: 0014_org_branding
Revises: 0013_oauth_clients
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014_org_branding"
down_revision: str | None = "0013_oauth_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "org_branding",
        sa.Column("org_id", _text(32), nullable=False),
        sa.Column("display_name", _text(200), nullable=True),
        sa.Column("primary_color", _text(7), nullable=True),
        sa.Column("contact_email", _text(320), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("logo_sha256", _text(64), nullable=False),
        sa.Column("logo_content_type", _text(40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )
    with op.batch_alter_table("org_branding") as batch:
        batch.create_index(batch.f("ix_org_branding_logo_sha256"), ["logo_sha256"], unique=False)
    op.create_table(
        "org_logo",
        sa.Column("org_id", _text(32), nullable=False),
        sa.Column("sha256", _text(64), nullable=False),
        sa.Column("content_type", _text(40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )
    with op.batch_alter_table("org_logo") as batch:
        batch.create_index(batch.f("ix_org_logo_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_table("org_logo")
    op.drop_table("org_branding")
