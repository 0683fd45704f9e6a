"""uvicorn's server without its 0.1 s tick: an idle instance sleeps until something happens.

``uvicorn.Server.main_loop`` wakes ten times a second, whether or not anything happened, to
refresh the ``Date`` header once a second and to look at ``should_exit``. For an org instance,
idle far more often than busy, those wake-ups were most of what it cost at rest (strace of an
idle instance: ~20 ``epoll_wait`` returns a second, docs/performance.md). :class:`QuietServer`
does the same two jobs on demand instead:

* the ``Date`` header is computed when a response asks for the default headers, at most once
  per second (:class:`LazyDateState`);
* the main loop waits on an event that setting ``should_exit`` (uvicorn's signal handler, a
  test, a lifespan failure) sets, from any thread or a signal handler.

Nothing else in uvicorn reads the tick: ``limit_max_requests`` and ``callback_notify`` are not
used by the instance (and :func:`serve` refuses a config that sets them).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from email.utils import formatdate
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.server import ServerState


class LazyDateState(ServerState):
    """uvicorn's shared server state whose ``default_headers`` carry a ``Date`` made when asked
    (at most once per second), not by a timer."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__()
        self._extra: list[tuple[bytes, bytes]] = list(config.encoded_headers)
        self._with_date = bool(config.date_header)
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = list(self._extra)

    @property  # an attribute in ServerState, computed here
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """``date`` (when configured) and the configured headers; callers copy, never mutate."""
        if self._with_date:
            now = time.time()
            second = int(now)
            if second != self._second:
                self._second = second
                self._headers = [(b"date", formatdate(now, usegmt=True).encode()), *self._extra]
        return self._headers

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        """Ignored: ``ServerState.__init__`` and uvicorn's tick assign it; it is computed."""


class QuietServer(uvicorn.Server):
    """``uvicorn.Server`` whose main loop sleeps until ``should_exit`` is set (no tick)."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_event: asyncio.Event | None = None
        super().__init__(config)
        self.server_state = LazyDateState(config)

    @property  # an attribute in uvicorn.Server, watched here
    def should_exit(self) -> bool:
        """Whether the server is to stop; setting it wakes the main loop."""
        return self._exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit = value
        loop, event = self._loop, self._exit_event
        if value and loop is not None and event is not None and not loop.is_closed():
            # Thread-safe and safe from a signal handler: it only queues a callback and
            # writes to the loop's self-pipe, which ends the epoll wait at once.
            loop.call_soon_threadsafe(event.set)

    async def main_loop(self) -> None:
        """Wait until :attr:`should_exit`, doing nothing meanwhile."""
        self._loop = asyncio.get_running_loop()
        self._exit_event = asyncio.Event()
        if not self._exit:
            await self._exit_event.wait()


def serve(app: Any, **options: Any) -> None:
    """``uvicorn.run(app, **options)`` on a :class:`QuietServer` (one worker, no reload)."""
    config = uvicorn.Config(app, **options)
    if config.workers > 1 or config.reload:
        raise ValueError("the quiet server runs one worker without reload")
    if config.limit_max_requests is not None or config.callback_notify is not None:
        raise ValueError("limit_max_requests and callback_notify need uvicorn's tick")
    config.load_app()
    server = QuietServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # as uvicorn.run: a start that failed exits non-zero
        sys.exit(STARTUP_FAILURE)
