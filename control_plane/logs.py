"""structlog set-up and the request-logging middleware.

Console output for people, JSON (``ORGPLANE_LOG_FORMAT=json``) for collectors. Every request
gets a ``request_id`` bound in contextvars, so every line logged while serving it carries it;
handlers bind ``user_id`` and ``org_id`` once they know them (see :func:`bind_request`).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from org_instance.logs import CurrentStderr
from provisioners import probe

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SECRET_KEYS = {"password", "secret", "token", "authorization", "credential", "refresh_token"}


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a secret-looking key reach a log line, whatever a caller bound."""
    for key in list(event):
        if any(part in key.lower() for part in _SECRET_KEYS) and key != "event":
            event[key] = "[redacted]"
    return event


def configure_logging(*, fmt: str = "console", level: str = "INFO") -> None:
    """Configure structlog and the standard library's root logger once per process."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def bind_request(**values: str | None) -> None:
    """Attach identifiers (user_id, org_id) to every later log line of this request."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v})


def forwarded_request_id() -> dict[str, str]:
    """The header that carries the request being served to an org instance, whose log lines
    then name the same ``request_id``; none outside a request (the reconciler's own calls).
    Clients made by ``provisioners.probe.instance_client`` carry it already."""
    return probe.forwarded_request_id()


class RequestLogMiddleware:
    """Pure ASGI middleware: request id in, one access-log line out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("orgplane.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
