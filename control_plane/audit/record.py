"""Recording audit events. Rows are only ever inserted."""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import AuditEvent, User

log = structlog.get_logger("orgplane.audit")


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
        detail=detail,
    )
    db.add(event)
    log.info("audit", action=action, outcome=outcome, org_id=org_id, target_id=target_id)
    return event
