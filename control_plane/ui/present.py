"""Template filters: how times, phases and ages read on a page."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from control_plane.db.models import utcnow

#: The badge style of each phase; the badge always shows the phase's name too.
PHASE_TONE: Final = {
    "running": "ok",
    "stopped": "muted",
    "hibernated": "muted",
    "pending": "info",
    "provisioning": "info",
    "starting": "info",
    "stopping": "info",
    "deleting": "warn",
    "unhealthy": "warn",
    "failed": "bad",
    "deleted": "muted",
}


def phase_tone(phase: str) -> str:
    """The CSS modifier of a phase badge."""
    return PHASE_TONE.get(phase, "info")


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """``moment`` as a short age ("12 s ago"), or "never"."""
    if moment is None:
        return "never"
    seconds = int(((now or utcnow()) - moment).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def timestamp(moment: datetime | None) -> str:
    """``moment`` in UTC, to the second."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def iso(moment: datetime | None) -> str:
    """``moment`` as ISO 8601 (for ``<time datetime>`` and the countdown script)."""
    return moment.isoformat() if moment else ""


FILTERS: Final[dict[str, Any]] = {
    "phase_tone": phase_tone,
    "age": age,
    "timestamp": timestamp,
    "iso": iso,
}
