"""WebSocket refusals as a standard client (the ``websockets`` library) sees them, matching
docs/org-instance.md: the instance accepts and closes at once with 4401 (no valid token), 4404
(no such session) or 1008 (foreign host); the control plane, which serves no WebSocket, answers
a handshake 404 problem+json.

Seen failing before: every one of these refusals reached the client as an HTTP 403 with an
empty body (the app closed before accepting), so no client ever saw a documented close code.
"""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.conformance.conftest import Platform

TIMEOUT = 10


async def close_code(p: Platform, target: str, *, host: str) -> int:
    """Connect to the instance as ``host`` and wait for the server's close; its code."""
    async with websockets.connect(
        f"ws://{host}{target}",
        host="127.0.0.1",
        port=p.instance.port,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


def events(session: str, token: str = "") -> str:
    query = f"?access_token={token}" if token else ""
    return f"/api/v1/sessions/{session}/events{query}"


async def test_no_token_closes_4401(platform: Platform) -> None:
    assert await close_code(platform, events("x"), host=platform.instance_host) == 4401


async def test_bad_token_closes_4401(platform: Platform) -> None:
    target = events("x", token="a.b.c")
    assert await close_code(platform, target, host=platform.instance_host) == 4401


async def test_unknown_session_closes_4404(platform: Platform) -> None:
    target = events("no-such-session", token=platform.org_token)
    assert await close_code(platform, target, host=platform.instance_host) == 4404


async def test_foreign_host_closes_1008(platform: Platform) -> None:
    target = events("x", token=platform.org_token)
    assert await close_code(platform, target, host="other-org.orgplane.test") == 1008


async def test_control_plane_answers_handshakes_404_problem(platform: Platform) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"ws://127.0.0.1:{platform.cp.port}/api/v1/me", open_timeout=TIMEOUT
        )
    response = refused.value.response
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert json.loads(response.body)["code"] == "not_found"


def test_control_plane_has_no_websocket_route(tmp_path: object) -> None:
    """``NoWebSockets`` answers every handshake 404: it must go if a WebSocket route comes."""
    app = create_app(Settings())
    assert not [r for r in app.routes if type(r).__name__ == "WebSocketRoute"]
