"""tenant bounds: pending domain claims per org (one verified owner), derived memberships

Revision ID: 0004_tenant_bounds
Revises: 0002_user_session_version
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004_tenant_bounds"
down_revision: str | None = "0002_user_session_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("domain") as batch:
        batch.add_column(
            sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.drop_index("ix_domain_hostname")
        batch.create_index("ix_domain_hostname", ["hostname"], unique=False)
        batch.create_index(
            "uq_domain_verified_hostname",
            ["hostname"],
            unique=True,
            sqlite_where=sa.text("verified"),
            postgresql_where=sa.text("verified"),
        )
        batch.create_unique_constraint("uq_domain_org_hostname", ["org_id", "hostname"])
    # Claims pending before this revision get the default time to live from now.
    domain = sa.table(
        "domain",
        sa.column("verified", sa.Boolean()),
        sa.column("claim_expires_at", sa.DateTime(timezone=True)),
    )
    expires = datetime.now(UTC) + timedelta(days=7)
    op.execute(
        domain.update().where(domain.c.verified.is_(False)).values(claim_expires_at=expires)
    )
    with op.batch_alter_table("membership") as batch:
        batch.add_column(
            sa.Column("via_org_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch.create_foreign_key("fk_membership_via_org_id_org", "org", ["via_org_id"], ["id"])
        batch.create_index("ix_membership_via_org_id", ["via_org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("membership") as batch:
        batch.drop_index("ix_membership_via_org_id")
        batch.drop_constraint("fk_membership_via_org_id_org", type_="foreignkey")
        batch.drop_column("via_org_id")
    with op.batch_alter_table("domain") as batch:
        batch.drop_constraint("uq_domain_org_hostname", type_="unique")
        batch.drop_index("uq_domain_verified_hostname")
        batch.drop_index("ix_domain_hostname")
        batch.create_index("ix_domain_hostname", ["hostname"], unique=True)
        batch.drop_column("claim_expires_at")
