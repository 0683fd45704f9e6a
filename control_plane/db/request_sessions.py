"""One database session per request, closed when the request ends, however it ends.

``provide_db`` is a generator dependency; Litestar closes it after the handler. But when a
later dependency of the same request raises (``principal`` 401, ``access`` 404 or 403...)
while Litestar resolves a batch of them in a task group, Litestar (2.x,
``KwargsModel.resolve_dependencies``) drops the cleanup group that holds the open generator:
the session keeps its pooled connection until the cyclic garbage collector finds it, and a
burst of refused requests empties the pool (503 ``database_unavailable``). Measured: each
refused ``POST /api/v1/orgs/{unknown}/suspend`` held one connection until ``gc.collect()``.
So every session opened for a request is also recorded in its ASGI scope, and
:class:`CloseRequestSessions` closes it once the request is over; closing twice is harmless.
"""

from __future__ import annotations

from typing import Any, Final, cast

from litestar.connection import ASGIConnection
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlmodel.ext.asyncio.session import AsyncSession

SCOPE_KEY: Final = "orgplane.db_sessions"


def track(connection: ASGIConnection[Any, Any, Any, Any], session: AsyncSession) -> None:
    """Record ``session`` as opened for this request, for :class:`CloseRequestSessions`."""
    cast(dict[str, Any], connection.scope).setdefault(SCOPE_KEY, []).append(session)


class CloseRequestSessions:
    """ASGI middleware: close the sessions a request opened once the app is done with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            opened: list[AsyncSession] = cast(dict[str, Any], scope).pop(SCOPE_KEY, [])
            for session in opened:
                await session.close()
