"""Putting back org Redis users that a Redis restart lost.

Without an ``aclfile`` Redis forgets its ACL users when it restarts, and an instance whose user
is gone can no longer reach its namespace (its ``/readyz`` fails, so it turns ``unhealthy``).
Housekeeping compares the users Redis has with the orgs that should have one and recreates the
missing ones with the password their instance already holds: nothing is restarted.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, Org
from control_plane.db.phases import DesiredState
from control_plane.redis_acl import (
    RedisAclError,
    delete_org_redis_user,
    missing_org_users,
    restore_org_redis_user,
)
from orgplane_wire.secret_box import SecretBox

log = structlog.get_logger("orgplane.reconciler")


async def restore_lost_redis_users(
    db: AsyncSession, *, redis_admin: Any, box: SecretBox
) -> list[str]:
    """Recreate the Redis user of every live org that has a stored URL but no user; returns
    the org ids restored."""
    rows = (
        await db.exec(
            select(Instance.org_id, Instance.redis_url_enc)
            .join(Org, col(Org.id) == col(Instance.org_id))
            .where(
                col(Instance.redis_url_enc) != "",
                col(Org.deleted_at).is_(None),
                col(Org.desired_state) != DesiredState.DELETED,
            )
        )
    ).all()
    stored = dict(rows)
    restored = []
    for org_id in await missing_org_users(redis_admin, sorted(stored)):
        try:
            url = box.decrypt(stored[org_id]).decode()
            await restore_org_redis_user(redis_admin, org_id=org_id, url=url)
        except (RedisAclError, ValueError) as exc:
            log.warning("redis user not restored", org_id=org_id, error=str(exc))
            continue
        if not await _still_live(db, org_id):
            # Deleted while we looked: the deletion may have removed the user after our read.
            await delete_org_redis_user(redis_admin, org_id=org_id)
            continue
        restored.append(org_id)
        log.info("redis user restored", org_id=org_id)
    return restored


async def _still_live(db: AsyncSession, org_id: str) -> bool:
    # Read committed (PostgreSQL) and pysqlite's autocommit reads: this sees a deletion that
    # committed after the list was read.
    org = await db.get(Org, org_id, populate_existing=True)
    return org is not None and org.deleted_at is None and org.desired_state != DesiredState.DELETED
