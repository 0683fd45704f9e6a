"""The API's view of an audit event (the list and the export share it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from control_plane.db.models import AuditEvent


class AuditEventOut(msgspec.Struct):
    id: int
    at: datetime
    action: str
    outcome: str
    actor_id: str | None
    actor_email: str
    org_id: str | None
    target_type: str
    target_id: str
    ip: str
    detail: dict[str, Any]


def event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=event.id or 0,
        at=event.at,
        action=event.action,
        outcome=event.outcome,
        actor_id=event.actor_id,
        actor_email=event.actor_email,
        org_id=event.org_id,
        target_type=event.target_type,
        target_id=event.target_id,
        ip=event.ip,
        detail=event.detail,
    )
