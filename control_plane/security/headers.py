"""``X-Content-Type-Options: nosniff`` on every answer of the control plane.

Answers carry JSON (problem+json included) and archives; a browser must never sniff one into
HTML or script. The UI's own middleware sets it with its other headers; this pure ASGI
middleware, outermost, adds it where nothing did (API answers, errors, redirects).
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniffMiddleware:
    """Adds ``nosniff`` to every HTTP answer that lacks it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(bytes(name).lower() == NOSNIFF[0] for name, _ in headers):
                    headers.append(NOSNIFF)
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)
