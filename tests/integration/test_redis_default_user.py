"""Per-org Redis users are refused while Redis's ``default`` user is open.

Each test runs a redis-server of its own (the shared one on 6379 is everyone's, and its
``default`` user is never touched): open as it starts, then closed with ``ACL SETUSER``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from control_plane.app import create_app
from control_plane.runtime import ConfigurationError
from tests.proof.private_services import PrivateRedis
from tests.support.api import assert_problem
from tests.support.services import need

pytestmark = [pytest.mark.redis, pytest.mark.parametrize("db_backend", ["sqlite"])]

ADMIN = ("orgplane", "admin-password-for-this-test")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    need("redis-server", shutil.which("redis-server") is not None)
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def as_default(private_redis: PrivateRedis) -> AsyncIterator[Redis]:
    """A connection to the private server as its ``default`` user, with an admin user made."""
    client = Redis.from_url(private_redis.url)
    await client.execute_command("ACL", "SETUSER", ADMIN[0], "on", f">{ADMIN[1]}", "~*", "&*")
    await client.execute_command("ACL", "SETUSER", ADMIN[0], "+@all")
    yield client
    await client.aclose()


def admin_url(server: PrivateRedis) -> str:
    return f"redis://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{server.port}/0"


async def close_default(as_default: Redis) -> None:
    await as_default.execute_command("ACL", "SETUSER", "default", "off")


async def test_production_refuses_to_start_while_the_default_user_is_open(
    make_settings: Any, db_backend: str, private_redis: PrivateRedis, as_default: Redis
) -> None:
    """Failed on the old code: the control plane started (per-org users over a server any
    client could use as ``default``)."""
    settings = make_settings(
        ORGPLANE_MODE="production", ORGPLANE_REDIS_URL=admin_url(private_redis)
    )
    with pytest.raises(ExceptionGroup) as refused:  # Litestar's lifespan task group
        async with create_app(settings).lifespan():
            pass
    assert refused.group_contains(
        ConfigurationError, match="`default` user is enabled without a password", depth=None
    )
    # Without per-org users there is nothing to refuse.
    no_org_users = make_settings(
        ORGPLANE_MODE="production",
        ORGPLANE_REDIS_URL=admin_url(private_redis),
        ORGPLANE_REDIS_ORG_USERS="false",
    )
    async with create_app(no_org_users).lifespan():
        pass


async def test_embedded_mode_warns_and_serves(
    make_settings: Any,
    db_backend: str,
    private_redis: PrivateRedis,
    as_default: Redis,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(ORGPLANE_REDIS_URL=admin_url(private_redis))
    async with create_app(settings).lifespan():
        pass
    assert "redis default user is open" in capfd.readouterr().err


async def test_readyz_reports_a_default_user_opened_after_start(
    make_settings: Any, db_backend: str, private_redis: PrivateRedis, as_default: Redis
) -> None:
    """Closed at start: the control plane starts and is ready. Opened again (``ACL SETUSER
    default on nopass``) while it runs: ``/readyz`` answers 503 ``redis_default_user_open``
    saying why; closed again, ready again.

    Failed on the old code: ``/readyz`` answered 200 throughout."""
    await close_default(as_default)
    admin = Redis.from_url(admin_url(private_redis))
    settings = make_settings(
        ORGPLANE_MODE="production", ORGPLANE_REDIS_URL=admin_url(private_redis)
    )
    app = create_app(settings)
    try:
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                assert (await c.get("/readyz")).status_code == 200
                await admin.execute_command("ACL", "SETUSER", "default", "on", "nopass")
                body = assert_problem(await c.get("/readyz"), 503, "redis_default_user_open")
                assert "default" in body["detail"]
                await admin.execute_command("ACL", "SETUSER", "default", "off")
                assert (await c.get("/readyz")).status_code == 200
    finally:
        await admin.aclose()
