"""The event types and how an event is written (in the caller's transaction)."""

from __future__ import annotations

import json
from typing import Any, Final

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Org, WebhookEvent

#: Every event type an endpoint may subscribe to, with what it means.
EVENT_TYPES: Final = {
    "instance.unhealthy": "an org's instance stopped sending heartbeats",
    "instance.failed": "an org's instance could not be provisioned or started",
    "org.created": "an org was created",
    "org.deleted": "an org's deletion finished (its instance and data are gone)",
    "org.suspended": "an org was suspended",
    "hostname.conflict": "a hostname claim met a hostname another org owns",
    "backup.failed": "a backup of an org failed",
    "security.signal": "a burst of refused token exchanges or forged tokens",
    "rollout.paused": "a staged rollout paused itself (too many failed upgrades in a wave)",
    "rollout.finished": "a staged rollout finished (every org moved) or was rolled back",
}


def emit(db: AsyncSession, event_type: str, data: dict[str, Any]) -> WebhookEvent:
    """Add an event to ``db``'s transaction; it is delivered once that commits."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    event = WebhookEvent(type=event_type, body="")
    body = {"type": event_type, "timestamp": event.created_at.isoformat(), "data": data}
    event.body = json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)
    db.add(event)
    return event


def org_data(org: Org, **extra: Any) -> dict[str, Any]:
    """The ``data`` of an org's event."""
    return {
        "org_id": org.id,
        "slug": org.slug,
        "phase": org.phase,
        "reason": org.reason,
        **extra,
    }
