"""How a refused WebSocket reaches the client, for both services (pure ASGI wrappers).

An ASGI app that closes a WebSocket before accepting it makes the server answer the handshake
with a bare HTTP 403: the close code the app chose (4401 no valid token, 4404 no such session,
4429 rate limited, 1008 foreign host) never reaches the client. Browsers cannot read a failed
handshake's status either, so the instance accepts such a handshake and closes at once with
the code: :class:`CloseCodesAfterAccept`. The control plane serves no WebSocket at all and
answers every handshake 404 problem+json: :class:`NoWebSockets`.
"""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from orgplane_wire.problems import PROBLEM_JSON, problem_body


class CloseCodesAfterAccept:
    """Accept, then close, a WebSocket the app refuses before accepting (see module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.WEBSOCKET:
            await self.app(scope, receive, send)
            return
        accepted = False

        async def send_with_code(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close" and not accepted:
                accepted = True
                await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
            await send(message)

        await self.app(scope, receive, send_with_code)


class NoWebSockets:
    """Answer every WebSocket handshake 404 problem+json (for an app with no WebSocket route)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.WEBSOCKET:
            await self.app(scope, receive, send)
            return
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1008, "reason": "no websockets"})
            return
        body = problem_body(
            status=404, code="not_found", title="Not found", detail="This server has no WebSocket."
        )
        start: Any = {
            "type": "websocket.http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        await send(start)
        end: Any = {"type": "websocket.http.response.body", "body": body}
        await send(end)
