"""Hibernation: an idle org's instance is stopped (data kept) until its next request.

The idle clock is ``Instance.last_active_at``, moved by heartbeats whose request counter moved
(and by the first heartbeat of every run, so a woken org gets a full idle period). When
``ORGPLANE_HIBERNATE_AFTER`` seconds pass without requests, the reconciler hibernates a running
org: ``Org.hibernated_at`` is set first (so routing sends its hosts to the wake endpoint at
once), the instance is stopped, and the phase becomes ``hibernated``. While ``hibernated_at`` is
set the reconciler keeps the instance stopped and expects no heartbeats.

Waking clears ``hibernated_at`` with one conditional ``UPDATE`` (two requests at once wake it
once), records ``woken_at`` and bumps the generation, so the reconciler's candidate query picks
the org up and starts it through the ordinary path, provisioning slots included:
``hibernated -> pending|provisioning -> starting -> running``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from litestar.stores.base import Store
from sqlalchemy import and_, false, or_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import Instance, Org, User, utcnow
from control_plane.db.phases import SERVING, DesiredState, OrgPhase
from control_plane.orgs.events import add_event, set_phase
from control_plane.routing.handover import Probe, handed_over
from orgplane_wire.problems import Conflict, Forbidden
from provisioners.base import InstanceStatus, Provisioner
from provisioners.errors import ProvisionerError, UnsupportedOperationError

log = structlog.get_logger("orgplane.reconciler")

#: Phases of an org on its way back from hibernation; the wake endpoint answers for them.
WAKING_PHASES = (OrgPhase.HIBERNATED, OrgPhase.PENDING, OrgPhase.PROVISIONING, OrgPhase.STARTING)
#: How long after a wake the wake endpoint still answers for the org: requests that reach it
#: while the proxy has not yet picked up the org's own route are redirected, not refused.
WAKE_WINDOW = timedelta(minutes=10)


def is_idle(
    *,
    last_active_at: datetime | None,
    started_at: datetime | None,
    now: datetime,
    hibernate_after: float,
) -> bool:
    """Whether an org without requests since ``last_active_at`` (else since its instance
    started) should hibernate; never when ``hibernate_after`` is 0 or nothing is known."""
    since = last_active_at or started_at
    if hibernate_after <= 0 or since is None:
        return False
    return (now - since).total_seconds() >= hibernate_after


def due_condition(*, hibernate_after: float, now: datetime) -> ColumnElement[bool]:
    """SQL: running orgs idle for ``hibernate_after`` seconds (for the reconciler's candidate
    query; the ``last_active_at`` comparison uses its index); false when hibernation is off."""
    if hibernate_after <= 0:
        return false()
    cutoff = now - timedelta(seconds=hibernate_after)
    return and_(
        col(Org.phase) == OrgPhase.RUNNING,
        col(Org.hibernated_at).is_(None),
        or_(
            col(Instance.last_active_at) < cutoff,
            col(Instance.last_active_at).is_(None) & (col(Instance.started_at) < cutoff),
        ),
    )


def asleep(*, hibernated_at: datetime | None, desired_state: str, suspended: bool) -> bool:
    """Hibernated and meant to run: the first request wakes it."""
    return hibernated_at is not None and desired_state == DesiredState.RUNNING and not suspended


def waking(
    *,
    phase: str,
    desired_state: str,
    suspended: bool,
    hibernated_at: datetime | None,
    woken_at: datetime | None,
    now: datetime,
) -> bool:
    """Woken recently and not serving yet: its hosts still go to the wake endpoint."""
    if (
        hibernated_at is not None
        or woken_at is None
        or suspended
        or desired_state != DesiredState.RUNNING
    ):
        return False
    return phase in WAKING_PHASES and now - woken_at <= WAKE_WINDOW


def wake_routed(org: Any, *, now: datetime) -> bool:
    """Whether ``org`` (an Org or a row with its columns) is routed to the wake endpoint."""
    kwargs = {
        "desired_state": org.desired_state,
        "suspended": org.suspended,
        "hibernated_at": org.hibernated_at,
    }
    return asleep(**kwargs) or waking(phase=org.phase, woken_at=org.woken_at, now=now, **kwargs)


async def hibernation_step(
    db: AsyncSession,
    org: Org,
    instance: Instance,
    status: InstanceStatus | None,
    *,
    provisioner: Provisioner,
    hibernate_after: float,
    routing: Store | None = None,
    probe: Probe | None = None,
) -> bool:
    """The reconciler's hook for an org meant to run; True when it handled the org.

    Hibernated orgs are kept stopped (never restarted, never ``unhealthy``); a running org idle
    for ``hibernate_after`` seconds is hibernated. Anything else is left to the caller. With the
    ``routing`` store, the instance stops only once Traefik routes the org's hosts to the wake
    endpoint (``control_plane/routing/handover.py``), seen by ``probe`` when given.
    """
    now = utcnow()
    if org.hibernated_at is None:
        idle = is_idle(
            last_active_at=instance.last_active_at,
            started_at=instance.started_at,
            now=now,
            hibernate_after=hibernate_after,
        )
        serving = status is not None and status.state == "running"
        if not (org.phase == OrgPhase.RUNNING and serving and idle):
            return False
        org.hibernated_at = now
        add_event(
            db,
            org_id=org.id,
            kind="instance.hibernating",
            message=f"no requests for {idle_text(hibernate_after)}",
        )
        record(
            db,
            action="instance.hibernate",
            org_id=org.id,
            target_type="instance",
            target_id=org.id,
            by="reconciler",
            idle_seconds=hibernate_after,
        )
    await _keep_stopped(
        db, org, instance, status, provisioner=provisioner, routing=routing, probe=probe
    )
    return True


def idle_text(seconds: float) -> str:
    """``seconds`` as people read an idle time."""
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min"


async def _keep_stopped(
    db: AsyncSession,
    org: Org,
    instance: Instance,
    status: InstanceStatus | None,
    *,
    provisioner: Provisioner,
    routing: Store | None,
    probe: Probe | None,
) -> None:
    instance.observed_generation = org.generation
    if status is not None and status.state not in ("absent", "stopped"):
        # Committed before the stop: routing sends the org's hosts to the wake endpoint, and
        # the stop waits until Traefik does.
        set_phase(db, org, OrgPhase.STOPPING, "hibernating")
        await db.commit()
        if routing is not None and not await handed_over(routing, org, probe=probe):
            return  # ``stopping`` is not steady: the next pass looks again
        try:
            await provisioner.stop(org_id=org.id)
        except UnsupportedOperationError:
            await provisioner.remove(org_id=org.id, keep_data=True)
        except ProvisionerError as exc:
            add_event(db, org_id=org.id, kind="instance.stop_failed", message=str(exc))
            log.warning("hibernation stop failed", org_id=org.id, error=str(exc))
            return  # ``stopping`` is not steady: the next pass tries again
    set_phase(db, org, OrgPhase.HIBERNATED, "no recent requests; the next request wakes it")


async def wake(
    db: AsyncSession, *, org_id: str, by: str, actor: User | None = None, ip: str = ""
) -> bool:
    """Clear the org's ``hibernated_at`` if set; True for the one caller that cleared it.

    One conditional UPDATE: of concurrent callers exactly one sees a row changed, and only that
    one records the wake. Bumps the generation, so the reconciler picks the org up. Commits.
    """
    now = utcnow()
    result = await db.exec(
        update(Org)
        .where(col(Org.id) == org_id, col(Org.hibernated_at).is_not(None))
        .values(
            hibernated_at=None, woken_at=now, generation=col(Org.generation) + 1, updated_at=now
        )
    )
    if result.rowcount != 1:
        await db.rollback()
        return False
    add_event(db, org_id=org_id, kind="instance.waking", message=f"woken by {by}")
    record(
        db,
        action="instance.wake",
        actor=actor,
        org_id=org_id,
        target_type="instance",
        target_id=org_id,
        ip=ip,
        by=by,
    )
    await db.commit()
    log.info("org woken", org_id=org_id, by=by)
    return True


def apply_action(org: Org, *, action: str, platform_admin: bool) -> None:
    """The instance actions ``wake`` (org admins) and ``hibernate`` (platform admins) on the
    org's row; the caller bumps the generation, records and commits. 409 when they do not fit."""
    if action == "wake":
        if org.hibernated_at is None:
            raise Conflict("The org is not hibernated.", code="not_hibernated")
        org.hibernated_at, org.woken_at = None, utcnow()
        return
    if not platform_admin:
        raise Forbidden("Only platform admins hibernate an org.", code="platform_admin_required")
    if org.hibernated_at is not None or org.phase not in SERVING:
        raise Conflict("Only a running org can be hibernated.", code="instance_not_running")
    org.hibernated_at = utcnow()
