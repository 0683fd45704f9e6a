"""The control plane writes every revocation into the org's revocation list (and channel):
member removal and role change, user disabled, logout, password change, a staff approval
revoked, an org suspended. On the real Redis; tests/instance/test_revocation.py shows the
instance acting on the same list."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from control_plane.settings import Settings
from orgplane_wire.contract import revocations_key
from tests.support.api import PASSWORD, add_user, login
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.tokens import make_org

pytestmark = pytest.mark.redis


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    need("Redis", redis_available())
    result: Settings = make_settings(ORGPLANE_REDIS_URL=REDIS_URL)
    return result


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def _fields(redis: Redis, org_id: str) -> set[str]:
    return {f.decode() for f in await redis.hkeys(revocations_key(org_id))}


async def test_each_revoking_event_reaches_the_orgs_list(
    client: AsyncTestClient[Any], redis: Redis
) -> None:
    """Failed on the old code: no event wrote anything (the lists stayed empty)."""
    tag = uuid.uuid4().hex[:8]
    names = ("owner", "m1", "m2", "m3", "staff", "root")
    emails = {n: f"{n}-{tag}@example.com" for n in names}
    ids = {n: await add_user(client, e, admin=n in ("staff", "root")) for n, e in emails.items()}
    org_id = await make_org(
        client,
        f"rev-{tag}",
        members={ids["owner"]: "owner", **{ids[n]: "member" for n in ("m1", "m2", "m3")}},
        require_access_approval=True,
    )
    child_id = await make_org(client, f"rev-{tag}-kid", members={}, parent_id=org_id)
    try:
        owner, root = await login(client, emails["owner"]), await login(client, emails["root"])
        base = f"/api/v1/orgs/{org_id}"
        removed = await client.delete(f"{base}/members/{ids['m1']}", headers=owner)
        assert removed.status_code == 204, removed.text
        assert f"sub:{ids['m1']}" in await _fields(redis, org_id)
        assert f"sub:{ids['m1']}" in await _fields(redis, child_id)  # inherited roles too

        m2 = await login(client, emails["m2"])
        out = await client.post("/api/v1/auth/logout", headers=m2, json={})
        assert out.status_code == 200
        assert f"sub:{ids['m2']}" in await _fields(redis, org_id)

        await client.patch(f"{base}/members/{ids['m2']}", headers=owner, json={"role": "admin"})
        disabled = await client.patch(
            f"/api/v1/users/{ids['owner']}", headers=root, json={"disabled": True}
        )
        assert disabled.status_code == 200, disabled.text
        assert f"sub:{ids['owner']}" in await _fields(redis, org_id)

        staff = await login(client, emails["staff"])
        filed = await client.post(
            f"{base}/access-requests", headers=staff, json={"reason": "ticket 1: checking"}
        )
        await client.patch(f"/api/v1/users/{ids['owner']}", headers=root, json={"disabled": False})
        owner = await login(client, emails["owner"])
        rid = filed.json()["id"]
        await client.post(f"{base}/access-requests/{rid}/approve", headers=owner)
        revoked = await client.post(f"{base}/access-requests/{rid}/reject", headers=owner)
        assert revoked.json()["status"] == "revoked"
        assert f"sub:{ids['staff']}" in await _fields(redis, org_id)

        changed = await client.post(
            "/api/v1/me/password",
            headers=await login(client, emails["m3"]),
            json={"current_password": PASSWORD, "new_password": "another long password"},
        )
        assert changed.status_code == 200
        assert f"sub:{ids['m3']}" in await _fields(redis, org_id)

        suspended = await client.post(f"{base}/suspend", headers=root)
        assert suspended.status_code == 202
        assert "org" in await _fields(redis, org_id)
        assert "org" in await _fields(redis, child_id)
        ttl = await redis.ttl(revocations_key(org_id))
        assert 0 < ttl <= 300 + 60  # lives as long as an org token can
    finally:
        await redis.delete(revocations_key(org_id), revocations_key(child_id))


async def test_a_derived_ownership_is_revoked_where_its_org_moved(
    client: AsyncTestClient[Any], redis: Redis
) -> None:
    """An org a parent's admin created, then moved under another parent: removing the admin
    from the first parent ends the derived ownership, and the revocation reaches the moved
    org's list too (it is no longer below the parent the removal revokes)."""
    tag = uuid.uuid4().hex[:8]
    owner = await add_user(client, f"owner-{tag}@example.com")
    pam = await add_user(client, f"pam-{tag}@example.com")
    await add_user(client, f"root-{tag}@example.com", admin=True)
    parent = await make_org(client, f"par-{tag}", members={owner: "owner", pam: "admin"})
    other = await make_org(client, f"oth-{tag}", members={owner: "owner"})
    as_pam = await login(client, f"pam-{tag}@example.com")
    root = await login(client, f"root-{tag}@example.com")
    body = {"slug": f"kid-{tag}", "name": "Kid", "parent_id": parent}
    made = await client.post("/api/v1/orgs", headers=as_pam, json=body)
    child = made.json()["id"]
    try:
        moved = await client.patch(f"/api/v1/orgs/{child}", headers=root, json={"parent_id": other})
        assert moved.status_code == 200, moved.text
        as_owner = await login(client, f"owner-{tag}@example.com")
        removed = await client.delete(f"/api/v1/orgs/{parent}/members/{pam}", headers=as_owner)
        assert removed.status_code == 204
        assert f"sub:{pam}" in await _fields(redis, child)
        assert (await client.get(f"/api/v1/orgs/{child}", headers=as_pam)).status_code == 404
    finally:
        await redis.delete(revocations_key(parent), revocations_key(child))
