"""The end of a deleted org's backups: after ``ORGPLANE_BACKUP_RETENTION_AFTER_DELETE`` (or
when a platform admin asks), its data key is shredded, then its archives and rows are removed.

The key goes first, in its own commit with the audit event: a crash before the files are gone
leaves files nobody can read, which the next housekeeping run removes. An org under legal hold
is skipped by housekeeping and refused to an admin (409 ``legal_hold``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final

import structlog
from sqlalchemy import and_, delete, exists, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.backups.keys import SHREDDED, LegalHoldActive, shred_key
from control_plane.backups.service import store_of
from control_plane.db.models import Backup, BackupKey, Org, User, utcnow
from control_plane.db.phases import DesiredState
from control_plane.runtime import Runtime
from orgplane_wire.problems import Conflict

log = structlog.get_logger("orgplane.backups.retention")

#: Orgs handled per housekeeping run; the rest are due on the next.
MAX_PER_RUN: Final = 20


async def shred_org_backups(
    runtime: Runtime,
    db: AsyncSession,
    *,
    org: Org,
    reason: str,
    actor: User | None = None,
    actor_email: str = "system",
    ip: str = "",
) -> int:
    """Shred ``org``'s data key and remove its backups; returns how many were removed.

    409 ``org_not_deleted`` for an org that is not deleted, 409 ``legal_hold`` under hold.
    """
    if org.deleted_at is None and org.desired_state != DesiredState.DELETED:
        raise Conflict("Only a deleted org's backups can be shredded.", code="org_not_deleted")
    org_id = org.id
    count = len((await db.exec(select(Backup.id).where(col(Backup.org_id) == org_id))).all())
    await shred_key(db, org_id=org_id)
    record(
        db,
        action="backup.key_shredded",
        actor=actor,
        actor_email=actor_email,
        org_id=org_id,
        target_type="org",
        target_id=org_id,
        ip=ip,
        reason=reason,
        backups=count,
    )
    await db.commit()
    removed = await asyncio.to_thread(store_of(runtime).delete_org, org_id=org_id)
    await db.exec(delete(Backup).where(col(Backup.org_id) == org_id))
    await db.commit()
    log.info("backups shredded", org_id=org_id, reason=reason, rows=count, files=removed)
    return count


async def expired_org_ids(db: AsyncSession, *, retention: int) -> list[str]:
    """Deleted orgs past retention, not under legal hold, with a key or backups left."""
    cutoff = utcnow() - timedelta(seconds=retention)
    held = exists().where(col(BackupKey.org_id) == col(Org.id), col(BackupKey.legal_hold).is_(True))
    live_key = exists().where(
        and_(col(BackupKey.org_id) == col(Org.id), col(BackupKey.wrapped_key) != SHREDDED)
    )
    has_backups = exists().where(col(Backup.org_id) == col(Org.id))
    rows = await db.exec(
        select(Org.id)
        .where(
            col(Org.deleted_at).is_not(None),
            col(Org.deleted_at) <= cutoff,
            ~held,
            or_(live_key, has_backups),
        )
        .order_by(col(Org.deleted_at))
        .limit(MAX_PER_RUN)
    )
    return list(rows.all())


async def expire_deleted_orgs(runtime: Runtime, db: AsyncSession) -> list[str]:
    """Housekeeping: shred the backups of deleted orgs past retention; returns their ids."""
    retention = runtime.settings.backup.backup_retention_after_delete
    done: list[str] = []
    for org_id in await expired_org_ids(db, retention=retention):
        org = await db.get(Org, org_id)
        if org is None:
            continue
        try:
            await shred_org_backups(runtime, db, org=org, reason="retention")
        except LegalHoldActive:  # set meanwhile
            await db.rollback()
            continue
        done.append(org_id)
    return done
