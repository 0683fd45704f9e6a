"""Scopes mean something at the instance: a read-only token reads and cannot write, and admin
routes need ``org:admin``, whatever the token's role says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient, TestClient

from org_instance.app import create_app
from tests.instance.helpers import FakeControlPlane, Signer, bearer, instance_config
from tests.support.api import assert_problem

READS = ["/api/v1/me", "/api/v1/sessions", "/api/v1/settings", "/api/v1/runners",
         "/api/v1/files", "/api/v1/usage"]  # fmt: skip


async def test_a_read_only_token_reads_and_cannot_write(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    """Failed on the old code: the instance never looked at ``scope``; an owner's token asked
    with ``scope=org:read`` created a session (201) and changed a setting (200)."""
    read_only = bearer(signer.token(org_id, org_role="owner", scope="org:read"))
    for path in READS:
        answer = await instance.get(path, headers=read_only)
        assert answer.status_code == 200, (path, answer.text)
    for method, path, body in (
        ("POST", "/api/v1/sessions", {}),
        ("PUT", "/api/v1/settings/theme", {"value": "dark"}),
        ("POST", "/api/v1/runners", {"name": "r1"}),
    ):
        refused = await instance.request(method, path, headers=read_only, json=body)
        problem = assert_problem(refused, 403, "insufficient_scope")
        assert problem["scope"] in ("org:write", "org:admin")
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert (await instance.get("/api/v1/sessions", headers=read_only)).json()["items"] == []


async def test_admin_routes_need_the_admin_scope(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    """Failed on the old code: an admin's token narrowed to ``org:read org:write`` still
    changed settings (200)."""
    narrowed = bearer(signer.token(org_id, org_role="admin", scope="org:read org:write"))
    put = await instance.put("/api/v1/settings/theme", headers=narrowed, json={"value": "dark"})
    assert_problem(put, 403, "insufficient_scope")
    created = await instance.post("/api/v1/sessions", headers=narrowed, json={})
    assert created.status_code == 201, created.text
    full = bearer(signer.token(org_id, org_role="admin"))
    done = await instance.put("/api/v1/settings/theme", headers=full, json={"value": "dark"})
    assert done.status_code == 200, done.text
    # Scope does not replace the role: a member's token claiming org:admin is still a member.
    member = bearer(signer.token(org_id, org_role="member", scope="org:read org:write org:admin"))
    refused = await instance.put("/api/v1/settings/theme", headers=member, json={"value": "x"})
    assert_problem(refused, 403, "role_required")


@pytest.mark.parametrize("scope", ["org:write", ""])
def test_a_websocket_needs_the_read_scope(
    tmp_path: Path, signer: Signer, cp: FakeControlPlane, scope: str
) -> None:
    """Failed on the old code: a token without ``org:read`` subscribed to a session's events."""
    config = instance_config(tmp_path)
    app = create_app(config, http=cp.client())
    with TestClient(app, base_url="http://acme.orgplane.test") as client:
        who = bearer(signer.token(config.org_id))
        sid = client.post("/api/v1/sessions", headers=who, json={}).json()["id"]
        token = signer.token(config.org_id, scope=scope)
        url = f"/api/v1/sessions/{sid}/events?access_token={token}"
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(url) as socket,
        ):
            socket.receive_text(timeout=5)
        assert refused.value.code == 4403
