"""One structured log line per HTTP request an instance answers, and its request id.

The line (``event="request"``) carries the method, the route *template* (never the raw path,
which can hold ids and names), the status, the duration, the caller's user id when a token
authenticated one, the org id (added by :mod:`orgplane_wire.logs`) and the request id. It is one
JSON object, as every line of an instance is unless ``ORGPLANE_LOG_FORMAT=console``.

The request id is the ``X-Request-ID`` the control plane forwards (a valid one:
``[A-Za-z0-9._-]{1,64}``), else a new one; it is bound for every line logged while the request
is served and echoed in the answer's ``X-Request-ID``. This wraps the whole app, so requests
refused before routing (400 ``invalid_host``, 421, 404) are logged too, as route ``unrouted``.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def request_id_of(scope: Scope) -> str:
    """The request's forwarded id when it is well formed, else a fresh one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class AccessLog:
    """Pure ASGI wrapper: request id in and out, one ``request`` line per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("orgplane.instance.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status, started = 500, time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode("ascii")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            user = scope.get("user")
            self.log.info(
                "request",
                method=scope["method"],
                route=scope.get("path_template") or "unrouted",
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                user_id=getattr(user, "sub", None),
            )
            structlog.contextvars.clear_contextvars()
