"""One org's steps in a rollout: upgrade (after a pre-upgrade backup), the health gate, and
the way back (a failed upgrade at once, every upgraded org on a rollback).

Row states (``RolloutOrg.state``): ``queued`` -> ``upgrading`` -> ``upgraded``; an upgrade that
misses its deadline -> ``failing`` (rolled back at once) -> ``failed``; on a rollback
``upgrading``/``upgraded`` -> ``reverting`` -> ``rolled_back``, or ``refused`` when going back
would lower the schema and the rollout says ``refuse``; ``queued`` -> ``cancelled``;
``skipped`` from the start or when the org became pinned or stopped before its turn.

The health gate: the org's instance of the current generation runs the version's image and
its own heartbeat, sent after it started, reports the version's name; the org is ``running``.
Every step is a timeline event of the org and an audit event.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import or_, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.backups.service import restore_into, take_backup
from control_plane.db.fleet_models import InstanceVersion, Rollout, RolloutOrg
from control_plane.db.models import Backup, Instance, Org, utcnow
from control_plane.db.phases import OrgPhase
from control_plane.fleet.registry import version_name
from control_plane.orgs.events import add_event
from control_plane.orgs.images import org_image
from control_plane.runtime import Runtime
from orgplane_wire.problems import ProblemError

log = structlog.get_logger("orgplane.rollouts")

IN_FLIGHT = ("upgrading", "failing", "reverting")
DONE = ("upgraded", "failed", "skipped", "cancelled", "refused", "rolled_back")
FAILED = ("failing", "failed")


def note(db: AsyncSession, rollout: Rollout, row: RolloutOrg, step: str, message: str) -> None:
    """The step on the org's timeline (``rollout.<step>``) and in the audit log."""
    add_event(
        db, org_id=row.org_id, kind=f"rollout.{step}", message=f"rollout {rollout.id}: {message}"
    )
    record(
        db,
        action=f"rollout.org_{step}",
        actor_email="rollout",
        org_id=row.org_id,
        target_type="rollout",
        target_id=rollout.id,
        message=message[:500],
    )


async def assign(db: AsyncSession, org_id: str, image: str) -> None:
    """Make ``image`` the org's rollout image and ask the reconciler to redeploy it."""
    org, instance = await db.get(Org, org_id), await db.get(Instance, org_id)
    assert org is not None
    assert instance is not None
    instance.assigned_image = image
    org.generation += 1
    org.updated_at = utcnow()
    db.add(instance)
    db.add(org)


async def assign_back(db: AsyncSession, row: RolloutOrg) -> None:
    """Put back the org's assignment from before its upgrade: none (it follows its plan's image
    again) or the image an earlier rollout assigned; the previous image on rows made before the
    assignment was recorded."""
    previous = row.from_image if row.from_assigned_image is None else row.from_assigned_image
    await assign(db, row.org_id, previous)


async def image_back(runtime: Runtime, db: AsyncSession, row: RolloutOrg) -> str:
    """The image the org runs once its assignment is put back (the plan's image may have
    changed since the upgrade)."""
    org, instance = await db.get(Org, row.org_id), await db.get(Instance, row.org_id)
    if org is None or instance is None:
        return row.from_image
    return await org_image(db, org=org, instance=instance, settings=runtime.settings.provisioning)


async def runs(db: AsyncSession, org_id: str, image: str) -> bool:
    """The health gate: the org's current instance runs ``image`` and its heartbeat reports
    that image's version (any, for an image that is not registered)."""
    org, instance = await db.get(Org, org_id), await db.get(Instance, org_id)
    if org is None or instance is None or org.phase != OrgPhase.RUNNING:
        return False
    seen, started = instance.last_heartbeat_at, instance.started_at
    if instance.image != image or instance.observed_generation != org.generation:
        return False
    if seen is None or (started is not None and seen < started):
        return False
    name = await version_name(db, image)
    return not name or instance.version == name


async def _claim_start(db: AsyncSession, row_id: int, *, seconds: float) -> bool:
    """Mark a queued org started, unless another replica started it within ``seconds`` (a
    start that died mid-backup leaves the org queued; it is started again after that). The
    database's row count decides. Commits."""
    now = utcnow()
    result = await db.exec(
        update(RolloutOrg)
        .where(
            col(RolloutOrg.id) == row_id,
            col(RolloutOrg.state) == "queued",
            or_(
                col(RolloutOrg.started_at).is_(None),
                col(RolloutOrg.started_at) < now - timedelta(seconds=seconds),
            ),
        )
        .values(started_at=now)
    )
    await db.commit()
    return bool(result.rowcount == 1)


async def start_upgrade(
    runtime: Runtime, rollout: Rollout, row_id: int, to: InstanceVersion
) -> None:
    """Back the org up, then move it to ``to`` (its own transaction). A failed backup fails
    the org's upgrade with nothing changed."""
    async with runtime.sessions() as db:
        if not await _claim_start(db, row_id, seconds=runtime.settings.provisioning.lease_seconds):
            return
        row = await db.get(RolloutOrg, row_id)
        org = await db.get(Org, row.org_id) if row is not None else None
        if row is None or org is None:
            return
        try:
            backup = await take_backup(
                runtime, db, org=org, kind="pre_upgrade", created_by=f"rollout:{rollout.id}"
            )
        except (ProblemError, Exception) as exc:
            await db.rollback()
            row = await db.get(RolloutOrg, row_id)
            assert row is not None
            reason = f"pre-upgrade backup failed, not upgraded: {getattr(exc, 'detail', '') or exc}"
            row.state, row.reason, row.finished_at = "failed", reason[:1000], utcnow()
            db.add(row)
            note(db, rollout, row, "failed", reason)
            await db.commit()
            return
        row.backup_id = backup.id
        instance = await db.get(Instance, row.org_id)
        row.from_assigned_image = instance.assigned_image if instance is not None else None
        await assign(db, row.org_id, to.image)
        row.state, row.reason = "upgrading", ""
        row.deadline_at = utcnow() + timedelta(seconds=rollout.health_deadline_seconds)
        db.add(row)
        note(db, rollout, row, "upgrading", f"to {to.name} (backup {backup.id})")
        await db.commit()


async def check_upgrade(
    db: AsyncSession, rollout: Rollout, row: RolloutOrg, to: InstanceVersion
) -> None:
    """Pass the gate (``upgraded``) or, past the deadline, roll the org back (``failing``)."""
    now = utcnow()
    if await runs(db, row.org_id, to.image):
        row.state, row.finished_at = "upgraded", now
        note(db, rollout, row, "upgraded", f"runs {to.name}")
    elif row.deadline_at is not None and now >= row.deadline_at:
        org = await db.get(Org, row.org_id)
        seen = f"{org.phase}: {org.reason}" if org is not None else "gone"
        row.state = "failing"
        row.reason = (
            f"not running {to.name} within {rollout.health_deadline_seconds}s ({seen}); "
            "rolling back"
        )[:1000]
        await assign_back(db, row)
        note(db, rollout, row, "failing", row.reason)
    db.add(row)


def begin_revert(
    db: AsyncSession, rollout: Rollout, row: RolloutOrg, *, lowers_schema: bool
) -> bool:
    """Start taking an upgraded (or upgrading) org back; False when the schema rule refuses."""
    if lowers_schema and rollout.on_older_schema == "refuse":
        row.state = "refused"
        row.reason = (
            "not rolled back: the previous version has an older schema, and restoring the "
            "pre-upgrade snapshot would lose data written since the upgrade (rollout option "
            "on_older_schema=refuse)"
        )
        row.finished_at = utcnow()
        db.add(row)
        note(db, rollout, row, "refused", row.reason)
        return False
    row.state, row.reason = "reverting", "rolling back"
    db.add(row)
    note(db, rollout, row, "reverting", f"back to {row.from_image}")
    return True


async def check_revert(
    runtime: Runtime, db: AsyncSession, rollout: Rollout, row: RolloutOrg, *, lowers_schema: bool
) -> None:
    """Once the org runs its previous image again (the one its previous assignment chooses):
    restore the pre-upgrade snapshot when the schema went back, then ``failed`` (a failed
    upgrade) or ``rolled_back``."""
    back = await image_back(runtime, db, row)
    if not await runs(db, row.org_id, back):
        return
    if lowers_schema and row.backup_id:
        backup, org = await db.get(Backup, row.backup_id), await db.get(Org, row.org_id)
        if backup is None or org is None:
            row.reason = "the pre-upgrade snapshot is gone; data left as the new version wrote it"
        else:
            try:
                await restore_into(runtime, db, backup=backup, target=org, actor_id="rollout")
            except ProblemError as exc:
                row.reason = f"restoring the pre-upgrade snapshot failed, retrying: {exc.detail}"[
                    :1000
                ]
                db.add(row)
                return
            note(db, rollout, row, "restored", f"pre-upgrade snapshot {backup.id} restored")
    final = "failed" if row.state == "failing" else "rolled_back"
    row.state, row.reverted, row.finished_at = final, True, utcnow()
    if final == "rolled_back":
        row.reason = f"runs {back} again"
    db.add(row)
    note(db, rollout, row, final, f"back on {back}")
