"""Per-org leases so two control-plane replicas never act on one org at once.

A lease is a conditional UPDATE on the org's ``Instance`` row: it succeeds only when the row is
unleased, the lease has expired, or this replica already holds it. The row count decides, so the
database arbitrates between replicas.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, utcnow


async def claim(db: AsyncSession, *, org_id: str, owner: str, seconds: float) -> bool:
    """Take or renew the lease of ``org_id`` for ``owner``; True when held. Commits."""
    now = utcnow()
    result = await db.exec(
        update(Instance)
        .where(
            col(Instance.org_id) == org_id,
            or_(
                col(Instance.lease_owner) == "",
                col(Instance.lease_owner) == owner,
                col(Instance.lease_expires_at) < now,
                col(Instance.lease_expires_at).is_(None),
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds))
    )
    await db.commit()
    return bool(result.rowcount == 1)


async def release(db: AsyncSession, *, org_id: str, owner: str) -> None:
    """Give the lease back (only if ``owner`` holds it). Commits."""
    await db.exec(
        update(Instance)
        .where(col(Instance.org_id) == org_id, col(Instance.lease_owner) == owner)
        .values(lease_owner="", lease_expires_at=None)
    )
    await db.commit()
