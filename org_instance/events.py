"""Live events: a session's new messages over WebSocket, through Litestar channels.

The channels backend is memory by default and Redis pub/sub when ``ORGPLANE_REDIS_URL`` is set;
channel names are ``org:{org_id}:session:{id}``, inside the org's Redis ACL prefix. A socket
lives no longer than the token that opened it: at the token's ``exp``, or as soon as the token
is revoked (``org_instance/revocations.py``), it is closed with 4401.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect, WebSocketException
from litestar.params import FromPath

from org_instance.deps import Caller, Instance
from org_instance.workspace.sessions import get_session
from orgplane_wire.problems import NotFound

WS_CLOSE_NOT_FOUND = 4404
WS_CLOSE_TOKEN_EXPIRED = 4401


def make_channels(*, redis: Any = None) -> Any:
    """A channels plugin on Redis pub/sub (``redis`` given) or in memory."""
    from litestar.channels import ChannelsPlugin

    if redis is not None:
        from litestar.channels.backends.redis import RedisChannelsPubSubBackend

        backend: Any = RedisChannelsPubSubBackend(redis=redis, stream_sleep_no_subscriptions=50)
    else:
        from litestar.channels.backends.memory import MemoryChannelsBackend

        backend = MemoryChannelsBackend()
    return ChannelsPlugin(
        backend=backend, arbitrary_channels_allowed=True, subscriber_max_backlog=1000
    )


@websocket("/api/v1/sessions/{session_id:str}/events")
async def session_events(
    socket: WebSocket[Any, Any, Any], session_id: FromPath[str], caller: Caller, instance: Instance
) -> None:
    """Stream each new message of the session as a JSON text frame until the client leaves."""
    try:
        await instance.db.read(get_session, session_id)
    except NotFound:
        raise WebSocketException(detail="session_not_found", code=WS_CLOSE_NOT_FOUND) from None
    channels = instance.channels
    await socket.accept()
    # The token's validity ends at its exp; so does the socket it opened (close 4401: the
    # client exchanges a fresh token and reconnects).
    deadline = asyncio.get_running_loop().time() + float(caller.claims["exp"]) - time.time()
    async with (
        channels.start_subscription([instance.session_channel(session_id)]) as subscriber,
        subscriber.run_in_background(socket.send_text),
    ):
        revoked = instance.revocations.watch({**caller.claims, "kid": caller.kid})
        closer = asyncio.create_task(_close_when_revoked(socket, revoked))
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    await socket.receive_text()
        except WebSocketDisconnect:
            return
        except TimeoutError:
            await socket.close(code=WS_CLOSE_TOKEN_EXPIRED, reason="token_expired")
        finally:
            instance.revocations.unwatch(revoked)
            closer.cancel()


async def _close_when_revoked(socket: WebSocket[Any, Any, Any], revoked: asyncio.Event) -> None:
    await revoked.wait()
    await socket.close(code=WS_CLOSE_TOKEN_EXPIRED, reason="token_revoked")


ROUTES = [session_events]
