"""The request-latency observation both services' metrics middleware make, and the media type
of their ``/metrics``.

Each request's latency is observed under (method, route template, status). Litestar runs app
middleware after routing, so ``path_template`` is known; unrouted requests (404, 405) never
reach app middleware, which keeps the route label bounded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Send

if TYPE_CHECKING:
    from prometheus_client import Histogram

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
    app: ASGIApp, scope: HTTPScope, receive: Receive, send: Send, *, duration: Histogram
) -> None:
    """Serve one HTTP request with ``app`` and observe its latency in ``duration``."""
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
        duration.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)
