"""Recording audit events. Rows are only ever inserted.

An event recorded for an org in which its actor acts as staff (a platform admin without a role
there, see ``control_plane.orgs.access``) carries ``detail.staff``: ``{"approval": <access
request id or null>}``, so every staff action in an org says so.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import AuditEvent, User

log = structlog.get_logger("orgplane.audit")


def mark_staff(db: AsyncSession, *, org_id: str, staff_id: str, approval_id: str | None) -> None:
    """Note on ``db``'s session that ``staff_id`` acts in ``org_id`` as staff (on the approval
    ``approval_id``, if the org needs one): later events of theirs there say so."""
    marks: dict[str, tuple[str, str | None]] = db.info.setdefault("orgplane_staff", {})
    marks[org_id] = (staff_id, approval_id)


def _staff_detail(db: AsyncSession, actor: User | None, org_id: str | None) -> dict[str, Any]:
    marks: dict[str, tuple[str, str | None]] = db.info.get("orgplane_staff", {})
    mark = marks.get(org_id or "")
    if actor is None or mark is None or mark[0] != actor.id:
        return {}
    return {"staff": {"approval": mark[1]}}


def record(
    db: AsyncSession,
    *,
    action: str,
    actor: User | None = None,
    org_id: str | None = None,
    target_type: str = "",
    target_id: str = "",
    outcome: str = "success",
    ip: str = "",
    actor_email: str = "",
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to ``db``'s transaction; it commits with the change it describes."""
    event = AuditEvent(
        action=action,
        outcome=outcome,
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else actor_email,
        org_id=org_id,
        target_type=target_type,
        target_id=target_id,
        ip=ip,
        detail={**detail, **_staff_detail(db, actor, org_id)},
    )
    db.add(event)
    log.info("audit", action=action, outcome=outcome, org_id=org_id, target_id=target_id)
    return event
