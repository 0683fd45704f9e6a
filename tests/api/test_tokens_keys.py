"""Key rotation through the API: publish first, switch later, retire after the last token."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.bootstrap import prepare_database
from control_plane.db.models import AuditEvent, SigningKey, utcnow
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from control_plane.tokens.rotation import list_keys, rotate_if_due
from tests.support.api import add_user, assert_problem, direct_db, runtime_of
from tests.support.tokens import login_body


async def _jwks_kids(client: AsyncTestClient[Any]) -> set[str]:
    return {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}


async def _shift(client: AsyncTestClient[Any], kid: str, **times: Any) -> None:
    async with direct_db(client) as db:
        row = await db.get(SigningKey, kid)
        assert row is not None
        for name, value in times.items():
            setattr(row, name, value)
        db.add(row)
        await db.commit()
    runtime_of(client).keyring.invalidate()


async def test_only_platform_admins_see_and_rotate_keys(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await add_user(client, "dev@example.com")
    dev = {
        "Authorization": f"Bearer {(await login_body(client, 'dev@example.com'))['access_token']}"
    }
    assert_problem(await client.get("/api/v1/keys", headers=dev), 403, "platform_admin_required")
    assert_problem(await client.post("/api/v1/keys/rotate", headers=dev), 403)
    assert_problem(await client.get("/api/v1/keys"), 401)
    listing = await client.get("/api/v1/keys", headers=admin)
    assert listing.status_code == 200, listing.text
    (key,) = listing.json()
    assert key["state"] == "signing"
    assert key["alg"] == "ES256"
    assert "private" not in listing.text.lower()


async def test_rotation_keeps_every_token_verifiable(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await add_user(client, "eve@example.com")
    before = (await login_body(client, "eve@example.com"))["access_token"]
    old_kid = jwt.get_unverified_header(before)["kid"]

    rotated = await client.post("/api/v1/keys/rotate", headers=admin)
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    assert rotated.json()["state"] == "pending"
    assert await _jwks_kids(client) == {old_kid, new_kid}, "published before it signs"
    during = (await login_body(client, "eve@example.com"))["access_token"]
    assert jwt.get_unverified_header(during)["kid"] == old_kid, "the new key must not sign yet"
    assert_problem(await client.post("/api/v1/keys/rotate", headers=admin), 409, "rotation_pending")

    past = utcnow() - timedelta(seconds=1)
    await _shift(client, new_kid, active_from=past)
    await _shift(client, old_kid, retire_after=past)
    after = (await login_body(client, "eve@example.com"))["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    for token in (before, during, after):
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, "a retired key verifies the tokens it signed"
    states = {
        k["kid"]: k["state"] for k in (await client.get("/api/v1/keys", headers=admin)).json()
    }
    assert states == {old_kid: "retired", new_kid: "signing"}

    await _shift(client, old_kid, expires_at=past)
    assert await _jwks_kids(client) == {new_kid}
    gone = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {before}"})
    assert_problem(gone, 401, "invalid_token")

    async with direct_db(client) as db:
        events = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "signing_key.rotate"))
        ).all()
    assert [(e.target_id, e.actor_email) for e in events] == [(new_kid, "root@example.com")]


async def test_replicas_rotating_at_once_start_one_rotation(settings: Settings) -> None:
    replicas = [Runtime.build(settings) for _ in range(2)]
    try:
        await prepare_database(replicas[0])
        due = utcnow() + timedelta(days=settings.tokens.key_rotation_days + 1)

        async def pass_of(runtime: Runtime) -> bool:
            async with runtime.sessions() as db:
                return await rotate_if_due(runtime, db, now=due)

        outcomes = await asyncio.wait_for(asyncio.gather(*(pass_of(r) for r in replicas)), 60)
        assert sorted(outcomes) == [False, True]
        async with replicas[0].sessions() as db:
            states = sorted(view.state for view in await list_keys(db, now=due))
        assert states == ["pending", "retiring"]
    finally:
        for runtime in replicas:
            await runtime.close()
