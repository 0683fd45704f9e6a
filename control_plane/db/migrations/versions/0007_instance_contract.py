"""instance.contract_version, instance.pinned_image, planimage: the contract version an instance
speaks, and the images platform admins choose per org and per plan

An org redeployed to an image before this revision keeps it: ``pinned_image`` starts as the
image the instance runs, so no instance changes image on upgrade. A redeploy without an image
clears it (the org then follows its plan's image, or the default).

Revision ID: 0007_instance_contract
Revises: 0006_mail
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_instance_contract"
down_revision: str | None = "0006_mail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("instance") as batch:
        batch.add_column(sa.Column("contract_version", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("pinned_image", _str(length=300), nullable=False, server_default="")
        )
    op.execute(sa.text("UPDATE instance SET pinned_image = image"))
    op.create_table(
        "planimage",
        sa.Column("plan", _str(length=40), nullable=False),
        sa.Column("image", _str(length=300), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan"),
    )


def downgrade() -> None:
    op.drop_table("planimage")
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("pinned_image")
        batch.drop_column("contract_version")
