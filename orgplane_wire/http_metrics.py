"""The request-latency observation both services' metrics middleware make, and the media type
of their ``/metrics``.

Each request is observed with its method, route template, status and latency; what each service
records of it is its own (its ``http_request`` method). Litestar runs app
middleware after routing, so ``path_template`` is known; unrouted requests (404, 405) never
reach app middleware, which keeps the route label bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Send

#: Records one answered request: (method, route template, status, seconds).
Observe = Callable[[str, str, int, float], None]

#: The classic text format of ``/metrics`` (Prometheus 2 reads it; Litestar adds the charset).
MEDIA_TYPE = "text/plain; version=0.0.4"


def status_of(exc: Exception) -> int:
    """The status the exception handlers will answer ``exc`` with (a problem's ``status``, an
    HTTP exception's ``status_code``), 500 for anything else."""
    for name in ("status", "status_code"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and 400 <= value <= 599:
            return value
    return 500


async def observe_http(
    app: ASGIApp, scope: HTTPScope, receive: Receive, send: Send, *, observe: Observe
) -> None:
    """Serve one HTTP request with ``app`` and hand its outcome to ``observe``."""
    status, started = 500, time.perf_counter()

    async def observe_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, observe_status)
    except Exception as exc:  # answered by the exception handlers further out
        status = status_of(exc)
        raise
    finally:
        route = scope.get("path_template") or "unrouted"
        observe(scope["method"], route, status, time.perf_counter() - started)
