"""The SDK follows the org's revocation list on the real Redis, as the org's own ACL user (made
by the control plane's ``ensure_org_redis_user``), with revocations written and published by
the control plane's own ``publish_revocation``: a revoked user's token, or an org's, is refused
by the guard as soon as the message arrives; a token issued after the moment is not; while the
channel cannot be followed only recent tokens are accepted; a retired key's tokens are refused.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from orgplane_sdk import InvalidToken, OrgInstance
from orgplane_sdk.contract import Env
from orgplane_sdk.redis import OrgRedis, Revocations
from redis.asyncio import Redis

from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user
from control_plane.tokens.org_revocation import publish_revocation
from tests.instance.helpers import ISSUER, FakeControlPlane, Signer
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import eventually

pytestmark = pytest.mark.redis
HOST = "acme.orgs.test"


@pytest.fixture
async def org_redis() -> AsyncIterator[tuple[str, str, Redis]]:
    """An org id of this test's, its Redis ACL user's URL, and the admin connection."""
    need("Redis", redis_available())
    org_id = f"opsdkpy-{uuid.uuid4().hex[:12]}"
    admin = Redis.from_url(REDIS_URL)
    try:
        yield org_id, await ensure_org_redis_user(admin, org_id=org_id), admin
    finally:
        await admin.delete(f"org:{org_id}:orgplane:revocations")
        await delete_org_redis_user(admin, org_id=org_id)
        await admin.aclose()


async def revoke(admin: Redis, org_id: str, field: str, value: int | None = None) -> None:
    runtime = SimpleNamespace(
        redis_admin=admin, settings=SimpleNamespace(tokens=SimpleNamespace(org_token_ttl=300))
    )
    await publish_revocation(runtime, org_ids=[org_id], field=field, value=value)  # type: ignore[arg-type]


@pytest.fixture
async def guarded(
    org_redis: tuple[str, str, Redis], tmp_path: Path, cp: FakeControlPlane
) -> AsyncIterator[tuple[OrgInstance, httpx.AsyncClient]]:
    org_id, url, _ = org_redis
    env = {
        Env.ORG_ID: org_id,
        Env.INSTANCE_CREDENTIAL: "opi_test-credential-0123456789",
        Env.DATA_DIR: str(tmp_path),
        Env.JWKS_URL: ISSUER + "/.well-known/jwks.json",
        Env.ISSUER: ISSUER,
        Env.HOSTNAMES: HOST,
        Env.REDIS_URL: url,
    }
    org = OrgInstance.from_env(env, http=cp.client())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["state"]["claims"]["sub"].encode()})

    transport = httpx.ASGITransport(app=org.wrap(app))  # type: ignore[arg-type]
    await org.start()
    try:
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as http:
            await eventually(lambda: org.revocations.live, what="the revocation channel followed")
            yield org, http
    finally:
        await org.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_revocations_reach_the_guard_as_they_are_published(
    guarded: tuple[OrgInstance, httpx.AsyncClient],
    org_redis: tuple[str, str, Redis],
    signer: Signer,
) -> None:
    org, http = guarded
    org_id, _, admin = org_redis
    alice, bob = signer.token(org_id, sub="alice"), signer.token(org_id, sub="bob")
    assert (await http.get("/x", headers=bearer(alice))).text == "alice"
    assert await org.ready()  # the org's Redis answers its ACL user

    await revoke(admin, org_id, "sub:alice")

    async def alice_refused() -> bool:
        return (await http.get("/x", headers=bearer(alice))).status_code == 401

    await eventually(alice_refused, what="alice's token refused")
    assert (await http.get("/x", headers=bearer(bob))).status_code == 200
    # A token issued after the moment is good (the moment is in whole seconds: one second on).
    later = signer.raw(
        signer.full_claims(org_id, sub="alice", iat=int(time.time()) + 1),
        {"kid": signer.kid, "typ": "at+jwt"},
    )
    assert (await http.get("/x", headers=bearer(later))).status_code == 200

    await revoke(admin, org_id, "org")
    await eventually(
        lambda: org.revocations.refuses({"iat": int(time.time()) - 1, "sub": "bob"}),
        what="the org-wide revocation",
    )
    assert (await http.get("/x", headers=bearer(bob))).status_code == 401


async def test_the_list_written_before_start_is_loaded(
    org_redis: tuple[str, str, Redis], signer: Signer
) -> None:
    org_id, url, admin = org_redis
    await revoke(admin, org_id, "jti:t-1")
    await revoke(admin, org_id, f"kid:{signer.kid}")
    retired: list[str] = []
    revocations = Revocations(OrgRedis(url, org_id), on_key_retired=retired.append)
    task = asyncio.create_task(revocations.run())
    try:
        await eventually(lambda: revocations.live, what="the list loaded")
        now = int(time.time())
        assert revocations.refuses({"iat": now, "sub": "u", "jti": "t-1"})
        assert not revocations.refuses({"iat": now, "sub": "u", "jti": "t-2"})
        assert retired == [signer.kid]
    finally:
        task.cancel()
        await revocations.redis.aclose()


def test_without_the_channel_only_recent_tokens_pass() -> None:
    revocations = Revocations(OrgRedis("redis://127.0.0.1:1/0", "org-x"))
    assert not revocations.live
    now = time.time()
    assert not revocations.refuses({"iat": int(now) - 30}, now=now)
    assert revocations.refuses({"iat": int(now) - 61}, now=now)
    assert revocations.refuses({"sub": "no iat"}, now=now)


async def test_a_retired_key_signs_nothing_any_more(cp: FakeControlPlane, signer: Signer) -> None:
    org = OrgInstance.from_env(
        {
            Env.ORG_ID: "org-1",
            Env.INSTANCE_CREDENTIAL: "opi_test-credential-0123456789",
            Env.DATA_DIR: "/nonexistent",
            Env.CONTROL_PLANE_URL: ISSUER,
        },
        http=cp.client(),
    )
    assert (await org.verifier.verify(signer.token("org-1")))["org_id"] == "org-1"
    org.verifier.retire(signer.kid)
    with pytest.raises(InvalidToken, match="unknown key"):
        await org.verifier.verify(signer.token("org-1"))
    await org.stop()
