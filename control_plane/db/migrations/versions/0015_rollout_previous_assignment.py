"""rolloutorg.from_assigned_image: the org's rollout assignment before its upgrade

A rollback (or the automatic rollback of a failed upgrade) puts this back, so an org that
followed its plan's image (no assignment) follows it again instead of keeping the previous image
as an assignment of its own (docs/rollouts.md). Rows written before this revision have NULL:
their rollback assigns the previous image, as before.

Revision ID: 0015_rollout_previous_assignment
Revises: 0014_org_branding
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015_rollout_previous_assignment"
down_revision: str | None = "0014_org_branding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rolloutorg") as batch:
        batch.add_column(
            sa.Column(
                "from_assigned_image",
                sqlmodel.sql.sqltypes.AutoString(length=300),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("rolloutorg") as batch:
        batch.drop_column("from_assigned_image")
