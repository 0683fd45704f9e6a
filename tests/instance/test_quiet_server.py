"""The instance's uvicorn server sleeps while idle: no 0.1 s tick, yet a current ``Date`` and a
prompt stop."""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import uvicorn

from org_instance.quiet_server import QuietServer


class CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The loop's selector, counting how often the loop waited (one per loop iteration)."""

    waits = 0

    def select(self, timeout: float | None = None) -> Any:
        type(self).waits += 1
        return super().select(timeout)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _serve_in_thread(server: uvicorn.Server, sock: socket.socket) -> threading.Thread:
    def run() -> None:
        loop = asyncio.SelectorEventLoop(CountingSelector())
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    return thread


def test_an_idle_server_does_not_wake_and_stops_at_once() -> None:
    """Failed on uvicorn's own server: its main loop woke ten times a second (~15 waits here)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app, lifespan="off", log_config=None, access_log=False)
    server = QuietServer(config)
    thread = _serve_in_thread(server, sock)
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert answer.status_code == 200
        date = parsedate_to_datetime(answer.headers["date"])
        assert abs(date.timestamp() - time.time()) < 5
        time.sleep(0.2)  # the connection's close settles
        CountingSelector.waits = 0
        time.sleep(1.5)
        assert CountingSelector.waits <= 2
        stopping = time.monotonic()
        server.should_exit = True  # from another thread, as a test or a signal handler does
        thread.join(timeout=10)
        assert not thread.is_alive()
        # Shutdown itself waits 0.1 s for connections; no tick to wait for on top.
        assert time.monotonic() - stopping < 3
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_the_date_header_follows_the_clock() -> None:
    """The ``Date`` is computed when asked (at most once a second), not by a timer."""
    config = uvicorn.Config(_app, log_config=None)
    server = QuietServer(config)
    first = dict(server.server_state.default_headers)[b"date"]
    time.sleep(1.1)
    second = dict(server.server_state.default_headers)[b"date"]
    assert parsedate_to_datetime(second.decode()) > parsedate_to_datetime(first.decode())
    no_date = QuietServer(uvicorn.Config(_app, log_config=None, date_header=False))
    assert b"date" not in dict(no_date.server_state.default_headers)
