"""A real HTTP webhook receiver for tests: an aiohttp server on a free loopback port that checks
every delivery's signature with the ``standardwebhooks`` library (an implementation independent
of the control plane's own signing code) and answers statuses from a script."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: Any  # the payload verify() returned, or None when the signature was refused


@dataclass
class Receiver:
    """Answers ``script`` statuses in turn (then ``then``); keeps what it received."""

    script: list[int] = field(default_factory=list)
    then: int = 200
    secret: str = ""
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = await request.read()
        headers = dict(request.headers)
        try:
            verified = Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):
            verified = None
        self.received.append(Received(headers=headers, body=body, verified=verified))
        status = self.script.pop(0) if self.script else self.then
        return aiohttp.web.Response(status=status, text="ok" if status < 300 else "no")

    def payloads(self) -> list[dict[str, Any]]:
        """The bodies whose signature verified, parsed."""
        return [json.loads(r.body) for r in self.received if r.verified is not None]


@asynccontextmanager
async def receiver(**kwargs: Any) -> AsyncIterator[Receiver]:
    """A :class:`Receiver` served on 127.0.0.1 at a port the OS chose."""
    made = Receiver(**kwargs)
    app = aiohttp.web.Application()
    app.router.add_post("/hook", made.handle)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = aiohttp.web.SockSite(runner, sock)
    await site.start()
    made.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    try:
        yield made
    finally:
        await runner.cleanup()


@asynccontextmanager
async def dead_receiver() -> AsyncIterator[str]:
    """The URL of a port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()
