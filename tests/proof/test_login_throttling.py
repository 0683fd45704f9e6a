"""Attack: login throttling under concurrent attempts, across two replicas sharing Redis.

Two control-plane apps (two replicas: one database, one Redis, one deployment id) serve an
attacker who sends ``login_attempts`` wrong passwords for one account at once, from one
address, half to each replica. The throttle counts each attempt with one atomic Redis
operation before the password is checked, so at most ``ORGPLANE_LOGIN_RATE_LIMIT`` of them are
checked (answered 401) and every other one is 429 problem+json with Retry-After, whichever
replica it reached (or, for at most 1 % that waited over 5 s for one of the throttle's Redis
connections on a loaded machine, 503 ``redis_unavailable``: refused as well). Meanwhile the
account's owner and another user, each from their own address, still sign in on both
replicas: the attacker locked out only itself.

Figures (``-s``): attempts, 401s, 429s, wall time, the other users' sign-ins.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar

from control_plane.app import create_app
from control_plane.settings import Settings
from control_plane.users.service import create_user
from tests.proof.conftest import Scale
from tests.support.api import PASSWORD
from tests.support.services import REDIS_URL, need, redis_available

pytestmark = [pytest.mark.redis, pytest.mark.parametrize("db_backend", ["sqlite"])]

LIMIT = 10
LOGIN = "/api/v1/auth/login"
ATTACKER, OWNER, OTHER = "203.0.113.66", "198.51.100.10", "198.51.100.20"


@asynccontextmanager
async def replicas(settings: Settings, count: int) -> AsyncIterator[list[Litestar]]:
    """``count`` apps on the same settings, each started (its own runtime and Redis clients)."""
    async with AsyncExitStack() as stack:
        apps = [create_app(settings) for _ in range(count)]
        for app in apps:
            await stack.enter_async_context(app.lifespan())
        yield apps


def client(app: Litestar, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def test_login_throttling_under_concurrent_attempts(
    make_settings: Any, db_backend: str, scale: Scale
) -> None:
    need("Redis", redis_available())
    settings = make_settings(
        ORGPLANE_REDIS_URL=REDIS_URL,
        ORGPLANE_REDIS_ORG_USERS="false",
        ORGPLANE_LOGIN_RATE_LIMIT=str(LIMIT),
    )
    async with replicas(settings, 2) as apps:
        async with apps[0].state.runtime.sessions() as db:
            await create_user(db, email="victim@example.com", password=PASSWORD)
            await create_user(db, email="bystander@example.com", password=PASSWORD)
            await db.commit()
        async with AsyncExitStack() as stack:
            attackers = [await stack.enter_async_context(client(a, ATTACKER)) for a in apps]
            wrong = {"email": "victim@example.com", "password": "not the password"}
            started = time.monotonic()
            answers = await asyncio.gather(
                *(attackers[i % 2].post(LOGIN, json=wrong) for i in range(scale.login_attempts))
            )
            elapsed = time.monotonic() - started
            signed_in = Counter[int]()
            for app in apps:
                for email, peer in (
                    ("victim@example.com", OWNER),
                    ("bystander@example.com", OTHER),
                ):
                    async with client(app, peer) as user:
                        answer = await user.post(LOGIN, json={"email": email, "password": PASSWORD})
                        signed_in[answer.status_code] += 1
    statuses = Counter(a.status_code for a in answers)
    print(
        f"login throttling: {scale.login_attempts} concurrent wrong passwords over 2 replicas "
        f"in {elapsed:.2f} s: 401: {statuses[401]}, 429: {statuses[429]}, "
        f"503: {statuses[503]}; other sign-ins: {dict(signed_in)}"
    )
    assert statuses[401] <= LIMIT, statuses  # the property: at most the limit is checked
    assert set(statuses) <= {401, 429, 503}, statuses
    # A request that waited over 5 s for a Redis connection is 503 (seen once at full size on
    # a loaded machine): refused too, never let through.
    assert statuses[503] <= scale.login_attempts // 100, statuses
    for refused in (a for a in answers if a.status_code in (429, 503)):
        assert refused.headers["content-type"].startswith("application/problem+json")
        code = "rate_limited" if refused.status_code == 429 else "redis_unavailable"
        assert refused.json()["code"] == code
        assert int(refused.headers["retry-after"]) >= 1
    assert signed_in == {200: 4}, signed_in
