"""The instance timeline: short events an operator reads to see why an org is where it is."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import InstanceEvent, Org
from control_plane.db.phases import OrgPhase
from control_plane.webhooks.events import emit, org_data

#: Phases whose start is a webhook event.
PHASE_EVENTS = {
    OrgPhase.UNHEALTHY: "instance.unhealthy",
    OrgPhase.FAILED: "instance.failed",
    OrgPhase.DELETED: "org.deleted",
}


def add_event(db: AsyncSession, *, org_id: str, kind: str, message: str = "") -> None:
    """Add an event to the org's timeline (in ``db``'s transaction)."""
    db.add(InstanceEvent(org_id=org_id, kind=kind, message=message[:2000]))


def set_phase(
    db: AsyncSession, org: Org, phase: OrgPhase | str, reason: str = "", *, event: bool = True
) -> None:
    """Move the org to ``phase`` with ``reason``; a change is also a timeline event (a change of
    the reason alone is not, with ``event=False``), and entering a phase of
    :data:`PHASE_EVENTS` a webhook event, in the same transaction."""
    phase = OrgPhase(phase)  # a name that is not a phase is a bug: ValueError
    changed = org.phase != phase
    if changed or (event and org.reason != reason):
        add_event(db, org_id=org.id, kind=f"phase.{phase}", message=reason)
    org.phase, org.reason = phase.value, reason[:500]
    db.add(org)
    if changed and phase in PHASE_EVENTS:
        emit(db, PHASE_EVENTS[phase], org_data(org))


async def timeline(db: AsyncSession, *, org_id: str, limit: int = 50) -> list[InstanceEvent]:
    """The org's newest events, newest first."""
    query = (
        select(InstanceEvent)
        .where(InstanceEvent.org_id == org_id)
        .order_by(col(InstanceEvent.at).desc(), col(InstanceEvent.id).desc())
        .limit(limit)
    )
    return list((await db.exec(query)).all())
