"""Driving rollouts: a step per pass of every replica's reconciler loop, one replica per
rollout at a time (a lease on the ``Rollout`` row, as leases on instances), with all state in
the database, so a rollout continues where it was after a restart or on another replica.

A step of a ``running`` rollout gates its orgs in flight (``steps``), pauses it when more than
``failure_threshold`` of the current wave's orgs failed (beyond the failures a resume
accepted), moves to the next wave once every org of this one is done, and starts queued orgs
of the wave while fewer than ``max_concurrent`` are in flight, each only inside its
maintenance window. ``paused`` only gates the orgs already in flight; ``rolling_back`` cancels
the queued orgs and takes every upgraded one back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.fleet_models import InstanceVersion, MaintenanceWindow, Rollout, RolloutOrg
from control_plane.db.models import Instance, Org, utcnow
from control_plane.db.phases import ASLEEP, DesiredState, OrgPhase
from control_plane.fleet.lease import claim_rollout, release_rollout, renewed_lease
from control_plane.fleet.steps import (
    DONE,
    FAILED,
    IN_FLIGHT,
    assign_back,
    begin_revert,
    check_revert,
    check_upgrade,
    note,
    start_upgrade,
)
from control_plane.fleet.windows import in_window
from control_plane.runtime import Runtime
from control_plane.store_errors import log_job_failure
from control_plane.webhooks.events import emit

log = structlog.get_logger("orgplane.rollouts")

ACTIVE = ("running", "paused", "rolling_back")
WINDOW_WAIT = "waiting for its maintenance window"


async def drive_rollouts(runtime: Runtime) -> bool:
    """One step of every active rollout this replica can lease; True when an org was moved
    (the reconciler then passes again at once)."""
    async with runtime.sessions() as db:
        ids = (await db.exec(select(Rollout.id).where(col(Rollout.state).in_(ACTIVE)))).all()
    moved = False
    owner = runtime.replica_id
    seconds = runtime.settings.provisioning.lease_seconds
    for rollout_id in ids:
        async with runtime.sessions() as db:
            if not await claim_rollout(db, rollout_id=rollout_id, owner=owner, seconds=seconds):
                continue
            try:
                async with renewed_lease(
                    runtime, rollout_id=rollout_id, owner=owner, seconds=seconds
                ):
                    moved = await _step(runtime, db, rollout_id) or moved
            except Exception as exc:
                await db.rollback()
                log_job_failure("rollout step failed", exc, rollout_id=rollout_id)
            finally:
                await release_rollout(db, rollout_id=rollout_id, owner=owner)
    return moved


def rollout_data(rollout: Rollout, **extra: Any) -> dict[str, Any]:
    """The ``data`` of a rollout's webhook event."""
    return {
        "rollout_id": rollout.id,
        "state": rollout.state,
        "reason": rollout.reason,
        "to_version_id": rollout.to_version_id,
        "wave": rollout.current_wave + 1,
        "waves": rollout.wave_count,
        **extra,
    }


def _conclude(db: AsyncSession, rollout: Rollout, state: str, reason: str) -> None:
    rollout.state, rollout.reason = state, reason[:1000]
    rollout.updated_at = utcnow()
    if state != "paused":
        rollout.finished_at = rollout.updated_at
    db.add(rollout)
    event = "rollout.paused" if state == "paused" else "rollout.finished"
    emit(db, event, rollout_data(rollout))
    record(
        db,
        action=f"rollout.{state}",
        actor_email="rollout",
        target_type="rollout",
        target_id=rollout.id,
        reason=rollout.reason,
    )
    log.info("rollout " + state, rollout_id=rollout.id, reason=rollout.reason)


async def _step(runtime: Runtime, db: AsyncSession, rollout_id: str) -> bool:
    rollout = await db.get(Rollout, rollout_id)
    if rollout is None or rollout.state not in ACTIVE:
        return False
    to = await db.get(InstanceVersion, rollout.to_version_id)
    assert to is not None
    schemas = dict(
        (await db.exec(select(InstanceVersion.image, InstanceVersion.schema_version))).all()
    )
    rows = list(
        (await db.exec(select(RolloutOrg).where(col(RolloutOrg.rollout_id) == rollout.id))).all()
    )

    def lowers(row: RolloutOrg) -> bool:
        return int(schemas.get(row.from_image, 0)) < to.schema_version

    for row in rows:
        if row.state == "upgrading":
            await check_upgrade(db, rollout, row, to)
        elif row.state in ("failing", "reverting"):
            # A failed upgrade never became ready: its snapshot is always the data to keep.
            lowered = lowers(row) and (
                row.state == "failing" or rollout.on_older_schema == "restore"
            )
            await check_revert(runtime, db, rollout, row, lowers_schema=lowered)
    await db.commit()
    if rollout.state == "rolling_back":
        return await _roll_back(db, rollout, rows, lowers)
    if rollout.state == "paused":
        return False
    wave = [row for row in rows if row.wave == rollout.current_wave]
    failures = sum(row.state in FAILED for row in wave) - rollout.failures_accepted
    if failures > rollout.failure_threshold * len(wave):
        _conclude(
            db,
            rollout,
            "paused",
            f"wave {rollout.current_wave + 1} of {rollout.wave_count}: {failures} of {len(wave)} "
            f"orgs failed their upgrade (threshold {rollout.failure_threshold:.0%})",
        )
        await db.commit()
        return False
    if all(row.state in DONE for row in wave):
        rollout.current_wave += 1
        rollout.failures_accepted, rollout.updated_at = 0, utcnow()
        db.add(rollout)
        if rollout.current_wave >= rollout.wave_count:
            upgraded = sum(row.state == "upgraded" for row in rows)
            _conclude(db, rollout, "finished", f"{upgraded} orgs run {to.name}")
        await db.commit()
        return True
    starts = await _due_starts(db, rollout, rows, wave)
    await db.commit()
    await asyncio.gather(*(start_upgrade(runtime, rollout, row_id, to) for row_id in starts))
    return bool(starts)


async def _due_starts(
    db: AsyncSession, rollout: Rollout, rows: list[RolloutOrg], wave: list[RolloutOrg]
) -> list[int]:
    """The queued orgs of the wave to start now: within the concurrency cap, running, inside
    their maintenance window; an org pinned, stopped, suspended or hibernated meanwhile is
    skipped, visibly (a starting or unhealthy one waits)."""
    slots = rollout.max_concurrent - sum(row.state in IN_FLIGHT for row in rows)
    starts: list[int] = []
    now = utcnow()
    for row in wave:
        if slots <= 0:
            break
        if row.state != "queued":
            continue
        org, instance = await db.get(Org, row.org_id), await db.get(Instance, row.org_id)
        skip = ""
        if org is None or instance is None or org.deleted_at is not None:
            skip = "deleted"
        elif instance.pinned_image:
            skip = f"pinned to {instance.pinned_image}"
        elif org.phase in ASLEEP or org.suspended or org.desired_state != DesiredState.RUNNING:
            skip = f"not running ({'suspended' if org.suspended else org.phase})"
        if skip:
            row.state, row.reason, row.finished_at = "skipped", skip, now
            db.add(row)
            note(db, rollout, row, "skipped", skip)
            continue
        assert org is not None
        wait = ""
        if org.phase != OrgPhase.RUNNING:  # starting, unhealthy, ...: it may be running soon
            wait = f"waiting for the org to run (it is {org.phase})"
        elif not in_window(await db.get(MaintenanceWindow, row.org_id), now):
            wait = WINDOW_WAIT
        if wait:
            if row.reason != wait:
                row.reason = wait
                db.add(row)
                note(db, rollout, row, "waiting", wait)
            continue
        assert row.id is not None
        starts.append(row.id)
        slots -= 1
    return starts


async def _roll_back(
    db: AsyncSession, rollout: Rollout, rows: list[RolloutOrg], lowers: Any
) -> bool:
    moved = False
    for row in rows:
        if row.state == "queued":
            row.state, row.reason, row.finished_at = (
                "cancelled",
                "the rollout was rolled back",
                utcnow(),
            )
            db.add(row)
            note(db, rollout, row, "cancelled", row.reason)
        elif row.state in ("upgrading", "upgraded") and begin_revert(
            db, rollout, row, lowers_schema=lowers(row)
        ):
            await assign_back(db, row)
            moved = True
    if not any(row.state in (*IN_FLIGHT, "upgraded", "queued") for row in rows):
        back = sum(row.state == "rolled_back" for row in rows)
        refused = sum(row.state == "refused" for row in rows)
        _conclude(
            db,
            rollout,
            "rolled_back",
            f"{back} orgs back on their previous version"
            + (f", {refused} refused" if refused else ""),
        )
    await db.commit()
    return moved
