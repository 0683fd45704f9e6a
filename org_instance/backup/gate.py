"""Maintenance: while a restore swaps the data, the org API answers 503 ``maintenance``.

:class:`MaintenanceGate` wraps the app (pure ASGI, inside the Host check). It counts the org
API requests in flight, so :meth:`MaintenanceGate.enter` can wait for them to finish before
the database is closed; probes and ``/internal/*`` pass through (the restore itself is one).
One backup or restore runs at a time (:meth:`MaintenanceGate.operation`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from org_instance.auth import PROBE_PATHS
from orgplane_wire.problems import Conflict, Unavailable, send_problem

INTERNAL_PREFIX = "/internal/"
RETRY_AFTER_SECONDS = 5
WS_CLOSE_TRY_AGAIN = 1013


class MaintenanceGate:
    """Pure ASGI: refuse org API requests while a restore runs; count those in flight."""

    def __init__(self, app: ASGIApp, *, drain_timeout: float = 30.0) -> None:
        self.app = app
        self.drain_timeout = drain_timeout
        self.active = False
        self.inflight = 0
        self._operation = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET)
            or path in PROBE_PATHS
            or path.startswith(INTERNAL_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        if self.active:
            await self._refuse(scope, send)
            return
        if scope["type"] == ScopeType.WEBSOCKET:  # long-lived; they never hold the database open
            await self.app(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if scope["type"] == ScopeType.WEBSOCKET:
            await send({"type": "websocket.close", "code": WS_CLOSE_TRY_AGAIN, "reason": ""})
            return
        await send_problem(
            send,
            status=503,
            code="maintenance",
            title="Maintenance",
            detail="The org's data is being restored; try again shortly.",
            headers=((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),),
        )

    @asynccontextmanager
    async def operation(self) -> AsyncIterator[None]:
        """Hold the one backup/restore slot; 409 ``backup_busy`` if another holds it."""
        if self._operation.locked():
            raise Conflict("Another backup or restore is running.", code="backup_busy")
        async with self._operation:
            yield

    async def enter(self) -> None:
        """Refuse new org API requests and wait for those in flight (503 if they do not end)."""
        self.active = True
        deadline = time.monotonic() + self.drain_timeout
        while self.inflight > 0:
            if time.monotonic() > deadline:
                self.active = False
                raise Unavailable("Requests in flight did not finish.", code="instance_busy")
            await asyncio.sleep(0.01)

    def leave(self) -> None:
        """Serve the org API again."""
        self.active = False
