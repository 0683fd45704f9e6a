"""Running a real control plane for a test: in the test's event loop (for true concurrency
through ``httpx.ASGITransport``) or as a uvicorn process on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from litestar import Litestar

from control_plane.app import create_app
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from tests.support.wait import wait_http

BASE_URL = "http://127.0.0.1:8080"


@asynccontextmanager
async def app_in_this_loop(settings: Settings) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """The app with its lifespan run in the current loop, and a client that calls it directly.

    Unlike ``AsyncTestClient`` (which serialises requests through one portal thread), requests
    sent with ``asyncio.gather`` really interleave at every await.
    """
    app = create_app(settings)
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        # The lifespan's cancel scopes must be entered and left in one task; a fixture's
        # setup and teardown may run in different ones.
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    await asyncio.wait(
        {task, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED, timeout=60
    )
    if task.done():
        task.result()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield app, client
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def runtime_of_app(app: Litestar) -> Runtime:
    """The runtime built by the app's lifespan."""
    runtime: Runtime = app.state.runtime
    return runtime


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def control_plane_process(
    env: dict[str, str], *, log: Path, timeout: float = 60.0
) -> Iterator[str]:
    """``orgplane serve`` in a subprocess on a free port; yields its base URL, stops it after."""
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORGPLANE_")},
        **env,
        "ORGPLANE_HOST": "127.0.0.1",
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli.main", "serve"],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"{url}/readyz", timeout=timeout, proc=proc, log=log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
