"""org search by fragment: trigram indexes on PostgreSQL (pg_trgm)

``GET /api/v1/orgs?q=`` and ``/orgs/lookup?q=`` match a fragment anywhere in the slug or the
lower-cased name (``LIKE '%q%'``), which no B-tree serves: with 100,000 orgs a fragment that
few orgs contain read every row (120 ms). GIN trigram indexes answer it in under a millisecond
(docs/scaling.md). PostgreSQL only: SQLite (embedded mode, a handful of orgs) scans. Where the
``pg_trgm`` extension cannot be created (not installed, or the role may not create it), the
migration goes on without the indexes and says so; search stays correct, only slower.

Revision ID: 0011_org_search
Revises: 0010_mfa
"""

from collections.abc import Sequence

import sqlalchemy as sa
import structlog
from alembic import op

revision: str = "0011_org_search"
down_revision: str | None = "0010_mfa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_org_name_trgm": "lower(name) gin_trgm_ops",
    "ix_org_slug_trgm": "slug gin_trgm_ops",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():  # a savepoint: a refusal leaves the migration's transaction
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        structlog.get_logger("orgplane.migrate").warning(
            "pg_trgm unavailable: org search goes without its trigram indexes", error=str(exc.orig)
        )
        return
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON org USING gin ({expression})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
