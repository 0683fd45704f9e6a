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


class CurrentStderr:
    """``sys.stderr`` as it is at each write. structlog's ``PrintLoggerFactory(sys.stderr)``
    keeps the stream of the moment it was configured, and loggers cached on first use keep it
    for good: an app configured while that stream was swapped (pytest's ``capsys`` swaps it for
    one test, then closes it) made every later line fail with "I/O operation on closed file"."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


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
        logger_factory=structlog.PrintLoggerFactory(CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
