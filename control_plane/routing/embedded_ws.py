"""Embedded mode's WebSocket relay: a client's WebSocket to an org host, joined to the instance's.

The instance is connected to first (Host kept, the client's end-to-end headers and
subprotocols passed on, ``X-Forwarded-*`` set by the proxy); only then is the client's handshake
accepted, with the subprotocol the instance chose. Frames then flow both ways until one side
closes, and its close code and reason are passed to the other (the instance's 4401, 4404 and
4429 reach the browser as they would through Traefik). An instance that cannot be reached or
refuses the handshake closes the client's WebSocket with 1011 (1008 for a 4xx refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import structlog
from litestar.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from control_plane.routing.forwarding import forwarded_headers, target_path

log = structlog.get_logger("orgplane.routing.embedded")

#: Handshake headers the WebSocket client makes itself.
_OWN = (b"sec-websocket-", b"content-length")
#: Close codes that may not be sent in a close frame (RFC 6455 §7.4.1): sent as these.
_UNSENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}
OPEN_TIMEOUT = 10.0
MAX_FRAME = 1_048_576


async def relay_websocket(
    scope: Scope, receive: Receive, send: Send, *, endpoint: str, host: str
) -> None:
    """Relay the client's WebSocket ``scope`` to the instance at ``endpoint`` (a URL)."""
    if (await receive())["type"] != "websocket.connect":
        return
    target = urlsplit(endpoint)
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in forwarded_headers(scope, host=host)
        if not k.startswith(_OWN)
    ]
    offered: list[str] = list(scope.get("subprotocols") or ())  # type: ignore[call-overload]
    try:
        upstream = await connect(
            f"ws://{host}{target_path(scope)}",
            host=target.hostname,
            port=target.port or 80,
            additional_headers=headers,
            subprotocols=[Subprotocol(p) for p in offered] or None,
            open_timeout=OPEN_TIMEOUT,
            max_size=MAX_FRAME,
            proxy=None,
            user_agent_header=None,
        )
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        refused = isinstance(exc, InvalidStatus) and 400 <= exc.response.status_code < 500
        log.warning("instance websocket refused", host=host[:255], error=type(exc).__name__)
        await send({"type": "websocket.close", "code": 1008 if refused else 1011, "reason": ""})
        return
    async with upstream:
        accept: Any = {"type": "websocket.accept", "subprotocol": upstream.subprotocol}
        await send(accept)
        await _join(receive, send, upstream)


async def _join(receive: Receive, send: Send, upstream: ClientConnection) -> None:
    """Pump frames both ways until either side closes; pass the close on."""
    to_instance = asyncio.create_task(_client_to_instance(receive, upstream))
    to_client = asyncio.create_task(_instance_to_client(send, upstream))
    done, pending = await asyncio.wait({to_instance, to_client}, return_when="FIRST_COMPLETED")
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, OSError):
            await task
    for task in done:
        task.result()


async def _client_to_instance(receive: Receive, upstream: ClientConnection) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            code = int(message.get("code") or 1000)
            await upstream.close(code=_sendable(code), reason=str(message.get("reason") or ""))
            return
        if message["type"] != "websocket.receive":
            continue
        text = message.get("text")
        try:
            await upstream.send(text if text is not None else message.get("bytes") or b"")
        except ConnectionClosed:
            return  # the other task passes the instance's close on


async def _instance_to_client(send: Send, upstream: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for data in upstream:
            await send(_frame(data))
    code = _sendable(upstream.close_code or 1006)
    await send({"type": "websocket.close", "code": code, "reason": upstream.close_reason or ""})


def _frame(data: str | bytes) -> Any:
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    return {"type": "websocket.send", "bytes": data}


def _sendable(code: int) -> int:
    return _UNSENDABLE.get(code, code)
