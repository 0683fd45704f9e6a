"""structlog set-up of an org instance: console for people, JSON for collectors.

Every line carries the org id. Keys that look like secrets are redacted whatever a caller bound,
so a token or credential never reaches a log line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict

_SECRET_PARTS = ("password", "secret", "token", "authorization", "credential")


def _redact_secrets(_: Any, __: str, event: EventDict) -> EventDict:
    for key in list(event):
        if key != "event" and any(part in key.lower() for part in _SECRET_PARTS):
            event[key] = "[redacted]"
    return event


def configure_logging(*, fmt: str, org_id: str, level: str = "INFO") -> None:
    """Configure structlog for this process (idempotent)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )

    def add_org(_: Any, __: str, event: EventDict) -> EventDict:
        event.setdefault("org_id", org_id)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_org,
            _redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
