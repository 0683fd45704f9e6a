"""A real control plane served over HTTP on a free loopback port, for end-to-end tests.

Org instances (and browsers) reach it over real sockets, so it runs under uvicorn in the
test's event loop rather than behind an in-process test client. On the way out every
instance its provisioner still knows of is removed, even when the test failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from control_plane.settings import Settings
from orgplane_wire.http_protocol import HTTP_PROTOCOL
from orgplane_wire.ws_handshake import WS_PROTOCOL
from tests.support.apps import lent_app
from tests.support.wait import eventually

#: A reconciler and heartbeats fast enough for a test to watch an org reach ``running``.
FAST_RECONCILER = {
    "ORGPLANE_RECONCILER_ENABLED": "true",
    "ORGPLANE_RECONCILE_INTERVAL": "0.5",
    "ORGPLANE_HEARTBEAT_INTERVAL": "1",
}


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@asynccontextmanager
async def serve_control_plane(
    settings: Settings, port: int, *, also_on: Sequence[str] = (), keep_instances: bool = False
) -> AsyncIterator[Any]:
    """Serve ``create_app(settings)`` on 127.0.0.1:``port`` (and on the addresses ``also_on``,
    such as a Docker network's gateway, for containers of the test); yields the app. The app
    may be one built before for the same settings (tests/support/apps.py).
    ``keep_instances``: leave the instances running on the way out (a control-plane restart:
    the next one on the same database and data directory takes them over)."""
    with lent_app(settings) as app:
        async with _serve(app, port, also_on, keep_instances) as served:
            yield served


@asynccontextmanager
async def _serve(
    app: Any, port: int, also_on: Sequence[str], keep_instances: bool
) -> AsyncIterator[Any]:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            ws=WS_PROTOCOL,
            http=HTTP_PROTOCOL,
        )
    )
    sockets = [_listen(host, port) for host in ("127.0.0.1", *also_on)] if also_on else None
    task = asyncio.create_task(server.serve(sockets=sockets))
    await eventually(
        lambda: server.started or task.done(), what="the control plane serving", interval=0.1
    )
    assert server.started, "the control plane did not start"
    try:
        yield app
    finally:
        # The reconciler first: left running, it repairs the "drift" of the removals below by
        # launching the instances again, racing the cleanup (seen as leaked instances and a
        # teardown that never ended).
        for other in asyncio.all_tasks():
            if other.get_name() == "orgplane-reconciler":
                other.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(other, timeout=15)
        runtime = app.state.runtime
        for status in [] if keep_instances else await runtime.provisioner.list():
            await runtime.provisioner.remove(org_id=status.org_id, keep_data=False)
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        for sock in sockets or ():
            sock.close()
