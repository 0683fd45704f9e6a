"""Scheduled backups and their retention, run from the reconciler's housekeeping.

Time is cut into slots of ``backup_interval`` seconds; every running org gets one scheduled
backup per slot. The claim is the row itself: ``schedule_slot`` (``<org_id>:<slot>``) has a
unique index, so when two replicas try the same slot one insert fails and that replica moves
on. After a backup, the org's scheduled backups beyond ``backup_keep`` are deleted, oldest
first (files and rows). At most :data:`MAX_PER_RUN` backups are taken per call, so one call
never holds up the reconciler for long; the rest are due on the next.
"""

from __future__ import annotations

import time
from typing import Final

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.backups.service import delete_backup, take_backup
from control_plane.db.models import Backup, Instance, Org
from control_plane.db.phases import OrgPhase
from control_plane.runtime import Runtime
from orgplane_wire.problems import ProblemError

log = structlog.get_logger("orgplane.backups.schedule")

MAX_PER_RUN: Final = 10
SCHEDULER: Final = "scheduler"


def slot_of(org_id: str, *, interval: int, now: float | None = None) -> str:
    """The schedule slot of ``org_id`` at ``now``."""
    return f"{org_id}:{int((now if now is not None else time.time()) // interval)}"


async def _due_org_ids(db: AsyncSession, *, interval: int, now: float) -> list[str]:
    orgs = (
        await db.exec(
            select(Org)
            .join(Instance, col(Instance.org_id) == col(Org.id))
            .where(
                col(Org.deleted_at).is_(None),
                col(Org.phase) == OrgPhase.RUNNING,
                col(Instance.endpoint) != "",
            )
            .order_by(col(Org.id))
        )
    ).all()
    slots = [slot_of(org.id, interval=interval, now=now) for org in orgs]
    taken = set(
        (
            await db.exec(select(Backup.schedule_slot).where(col(Backup.schedule_slot).in_(slots)))
        ).all()
    )
    return [org.id for org, slot in zip(orgs, slots, strict=True) if slot not in taken]


async def apply_retention(runtime: Runtime, db: AsyncSession, *, org_id: str) -> int:
    """Delete the org's scheduled backups beyond ``backup_keep``; returns how many."""
    keep = max(runtime.settings.backup.backup_keep, 0)
    rows = (
        await db.exec(
            select(Backup)
            .where(col(Backup.org_id) == org_id, col(Backup.kind) == "scheduled")
            .order_by(col(Backup.created_at).desc(), col(Backup.id).desc())
        )
    ).all()
    for row in rows[keep:]:
        await delete_backup(runtime, db, row)
    await db.commit()
    return max(len(rows) - keep, 0)


async def run_due_backups(runtime: Runtime, db: AsyncSession, *, now: float | None = None) -> int:
    """Take the scheduled backups that are due; returns how many were taken."""
    interval = runtime.settings.backup.backup_interval
    if interval <= 0:
        return 0
    moment = now if now is not None else time.time()
    taken = 0
    for org_id in (await _due_org_ids(db, interval=interval, now=moment))[:MAX_PER_RUN]:
        org = await db.get(Org, org_id)  # (re)loaded: a rollback below expires loaded rows
        if org is None:
            continue
        slot = slot_of(org_id, interval=interval, now=moment)
        try:
            await take_backup(
                runtime, db, org=org, kind="scheduled", created_by=SCHEDULER, slot=slot
            )
            taken += 1
        except IntegrityError:
            await db.rollback()  # another replica claimed this slot
            continue
        except ProblemError as exc:
            log.warning("scheduled backup failed", org_id=org_id, code=exc.code)
        await apply_retention(runtime, db, org_id=org_id)
    return taken
