"""structlog set-up of both services: console for people, JSON for collectors.

Keys that look like secrets (:data:`SECRET_KEY_PARTS`, one list for both services) are redacted
whatever a caller bound, so a token or credential never reaches a log line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: A bound key naming any of these (case-insensitive) has its value replaced by "[redacted]".
SECRET_KEY_PARTS = ("password", "secret", "token", "authorization", "credential")


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a secret-looking key reach a log line, whatever a caller bound."""
    for key in list(event):
        if key != "event" and any(part in key.lower() for part in SECRET_KEY_PARTS):
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


def configure_logging(
    *,
    fmt: str,
    level: str = "INFO",
    colors: bool = False,
    bound: dict[str, str] | None = None,
    cache_loggers: bool = False,
) -> None:
    """Configure structlog for this process (idempotent).

    ``bound``: keys every line carries (an instance's ``org_id``) unless a caller bound them.
    ``cache_loggers``: a process whose configuration never changes caches its loggers.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=colors)
    )
    fixed = dict(bound or {})

    def add_bound(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in fixed.items():
            event.setdefault(key, value)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([add_bound] if fixed else []),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=cache_loggers,
    )
