"""backup keys: each org's wrapped backup data key, its shredding and the legal hold

Archives in the backup store are encrypted with a per-org data key, kept here wrapped by the
platform key (docs/backups.md). Emptying ``wrapped_key`` shreds the org's backups.

Revision ID: 0012_backup_keys
Revises: 0011_org_search
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_backup_keys"
down_revision: str | None = "0011_org_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "backup_key",
        sa.Column("org_id", _str(length=32), nullable=False),
        sa.Column("wrapped_key", _str(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("legal_hold_reason", _str(length=500), nullable=False),
        sa.Column("legal_hold_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )


def downgrade() -> None:
    op.drop_table("backup_key")
