"""Emergency retirement of a signing key: it stops verifying at once, a new key signs."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent
from tests.support.api import add_user, assert_problem, direct_db, login


async def test_a_retired_key_stops_verifying_and_another_signs(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: there was no retire action (404); a compromised key could only
    be rotated, and stayed published and verifying until every token it signed expired."""
    await add_user(client, "root@example.com", admin=True)
    await add_user(client, "alice@example.com")
    root, alice = await login(client, "root@example.com"), await login(client, "alice@example.com")
    kid = jwt.get_unverified_header(alice["Authorization"].split()[1])["kid"]

    assert_problem(await client.post(f"/api/v1/keys/{kid}/retire", headers=alice), 403)
    assert_problem(
        await client.post("/api/v1/keys/nope/retire", headers=root), 404, "key_not_found"
    )
    retired = await client.post(f"/api/v1/keys/{kid}/retire", headers=root)
    assert retired.status_code == 200, retired.text
    assert (retired.json()["kid"], retired.json()["state"]) == (kid, "expired")

    published = [k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]]
    assert kid not in published
    assert_problem(await client.get("/api/v1/me", headers=alice), 401, "invalid_token")
    again = await login(client, "alice@example.com")
    new_kid = jwt.get_unverified_header(again["Authorization"].split()[1])["kid"]
    assert new_kid != kid
    assert new_kid in published
    assert (await client.get("/api/v1/me", headers=again)).status_code == 200
    async with direct_db(client) as db:
        actions = (
            await db.exec(
                select(AuditEvent.target_id).where(
                    col(AuditEvent.action) == "signing_key.retire_now"
                )
            )
        ).all()
    assert actions == [kid]
