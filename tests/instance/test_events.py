"""Live events: new messages reach every WebSocket client of the session (memory channels)."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from org_instance.app import create_app
from tests.instance.helpers import FakeControlPlane, Signer, bearer, instance_config


def test_new_messages_stream_to_every_client_of_the_session(
    tmp_path: Path, signer: Signer, cp: FakeControlPlane
) -> None:
    config = instance_config(tmp_path)
    org = config.org_id
    app = create_app(config, http=cp.client())
    with TestClient(app, base_url="http://acme.orgplane.test") as client:
        who = bearer(signer.token(org))
        sid = client.post("/api/v1/sessions", headers=who, json={}).json()["id"]
        other = client.post("/api/v1/sessions", headers=who, json={}).json()["id"]
        url = f"/api/v1/sessions/{sid}/events?access_token={signer.token(org)}"
        with client.websocket_connect(url) as first, client.websocket_connect(url) as second:
            client.post(
                f"/api/v1/sessions/{other}/messages", headers=who, json={"body": "elsewhere"}
            )
            sent = client.post(f"/api/v1/sessions/{sid}/messages", headers=who, json={"body": "hi"})
            assert sent.status_code == 201
            for socket in (first, second):
                event = socket.receive_json(timeout=5)
                assert event["body"] == "hi"
                assert event["session_id"] == sid


@pytest.mark.parametrize("case", ["no token", "other org", "unknown session", "wrong host"])
def test_websocket_handshakes_are_refused(
    tmp_path: Path, signer: Signer, cp: FakeControlPlane, case: str
) -> None:
    config = instance_config(tmp_path)
    app = create_app(config, http=cp.client())
    with TestClient(app, base_url="http://acme.orgplane.test") as client:
        sid = client.post(
            "/api/v1/sessions", headers=bearer(signer.token(config.org_id)), json={}
        ).json()["id"]
        token = signer.token(config.org_id)
        url, headers = f"/api/v1/sessions/{sid}/events?access_token={token}", {}
        if case == "no token":
            url = f"/api/v1/sessions/{sid}/events"
        elif case == "other org":
            url = f"/api/v1/sessions/{sid}/events?access_token={signer.token('c' * 32)}"
        elif case == "unknown session":
            url = f"/api/v1/sessions/nope/events?access_token={token}"
        else:
            headers = {"host": "evil.example"}
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(url, headers=headers) as socket,
        ):
            socket.receive_text(timeout=5)
        expected = {
            "no token": 4401,
            "other org": 4401,
            "unknown session": 4404,
            "wrong host": 1008,
        }[case]
        assert refused.value.code == expected


def test_a_websocket_is_closed_when_its_token_expires(
    tmp_path: Path, signer: Signer, cp: FakeControlPlane
) -> None:
    """Failed on the old code: the socket stayed open past the token's exp (receive timed out
    after 8 s with the socket still open)."""
    config = instance_config(tmp_path)
    app = create_app(config, http=cp.client())
    with TestClient(app, base_url="http://acme.orgplane.test") as client:
        who = bearer(signer.token(config.org_id))
        sid = client.post("/api/v1/sessions", headers=who, json={}).json()["id"]
        short = signer.token(config.org_id, ttl=2)
        url = f"/api/v1/sessions/{sid}/events?access_token={short}"
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect(url) as socket,
        ):
            socket.receive_text(timeout=8)
        assert closed.value.code == 4401
        # A long-lived token's socket is still served meanwhile.
        long_url = f"/api/v1/sessions/{sid}/events?access_token={signer.token(config.org_id)}"
        with client.websocket_connect(long_url) as socket:
            client.post(f"/api/v1/sessions/{sid}/messages", headers=who, json={"body": "hi"})
            assert socket.receive_json(timeout=5)["body"] == "hi"
