"""structlog set-up and the request-logging middleware.

Console output for people, JSON (``ORGPLANE_LOG_FORMAT=json``) for collectors. Every request
gets a ``request_id`` bound in contextvars, so every line logged while serving it carries it;
handlers bind ``user_id`` and ``org_id`` once they know them (see :func:`bind_request`).
"""

from __future__ import annotations

import re
import sys
import time
import uuid

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from orgplane_wire import logs as wire_logs
from provisioners import probe

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def configure_logging(*, fmt: str = "console", level: str = "INFO") -> None:
    """Configure structlog once per process (:func:`orgplane_wire.logs.configure_logging`)."""
    wire_logs.configure_logging(fmt=fmt, level=level, colors=sys.stderr.isatty())


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
