"""Org Redis users outlive a Redis restart: saved to the aclfile when there is one, and put back
by the reconciler's housekeeping (with the password the instance holds) when there is none."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError

from control_plane.db.models import Instance, Org, utcnow
from control_plane.reconciler.redis_users import restore_lost_redis_users
from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user, username_for
from tests.support.api import direct_db
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
async def redis_admin() -> AsyncIterator[Redis]:
    need("Redis", redis_available())
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def _can_write_own_key(url: str, org_id: str) -> bool:
    client = Redis.from_url(url)
    try:
        await client.set(f"org:{org_id}:probe", "1")
        await client.delete(f"org:{org_id}:probe")
        return True
    except AuthenticationError:
        return False
    finally:
        await client.aclose()


async def _org_with_redis_user(client: Any, redis_admin: Redis, *, deleted: bool = False) -> str:
    org_id = uuid.uuid4().hex
    url = await ensure_org_redis_user(redis_admin, org_id=org_id)
    box = client.app.state.runtime.box
    async with direct_db(client) as db:
        db.add(
            Org(
                id=org_id,
                slug=f"o{org_id[:10]}",
                name="O",
                deleted_at=utcnow() if deleted else None,
            )
        )
        await db.commit()
        db.add(
            Instance(org_id=org_id, provisioner="local", redis_url_enc=box.encrypt(url.encode()))
        )
        await db.commit()
    return org_id


async def test_housekeeping_puts_back_users_a_restart_lost(client: Any, redis_admin: Redis) -> None:
    live, gone = await _org_with_redis_user(client, redis_admin), ""
    try:
        gone = await _org_with_redis_user(client, redis_admin, deleted=True)
        box = client.app.state.runtime.box
        async with direct_db(client) as db:
            instance = await db.get(Instance, live)
            assert instance is not None
            url = box.decrypt(instance.redis_url_enc).decode()
        # What a Redis restart without an aclfile does to both users:
        for org_id in (live, gone):
            await redis_admin.execute_command("ACL", "DELUSER", username_for(org_id))
        assert not await _can_write_own_key(url, live)

        async with direct_db(client) as db:
            restored = await restore_lost_redis_users(db, redis_admin=redis_admin, box=box)

        assert restored == [live]  # a deleted org's user stays gone
        assert await _can_write_own_key(url, live)  # the instance's own URL works again
        users = await redis_admin.execute_command("ACL", "USERS")
        assert username_for(gone).encode() not in users
        async with direct_db(client) as db:  # nothing missing: nothing to do
            assert await restore_lost_redis_users(db, redis_admin=redis_admin, box=box) == []
    finally:
        for org_id in (live, gone):
            if org_id:
                await delete_org_redis_user(redis_admin, org_id=org_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _private_redis(directory: Path, port: int) -> Iterator[None]:
    """A redis-server of this test's own, with an aclfile in ``directory``."""
    binary = shutil.which("redis-server")
    need("redis-server", binary is not None)
    assert binary is not None
    (directory / "users.acl").touch()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--aclfile",
            str(directory / "users.acl"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return True
            if process.poll() is not None:
                raise AssertionError("private redis-server exited")
            return False

        wait_until(listening, what=f"the private redis-server on port {port}")
        yield
    finally:
        process.terminate()
        process.wait(10)


async def test_with_an_aclfile_users_survive_a_redis_restart(tmp_path: Path) -> None:
    need("Redis", redis_available())
    port, org_id = _free_port(), uuid.uuid4().hex
    with _private_redis(tmp_path, port):
        admin = Redis(host="127.0.0.1", port=port)
        url = await ensure_org_redis_user(admin, org_id=org_id)
        await admin.aclose()
    assert username_for(org_id) in (tmp_path / "users.acl").read_text()
    with _private_redis(tmp_path, port):
        assert await _can_write_own_key(url, org_id)
        admin = Redis(host="127.0.0.1", port=port)
        assert await delete_org_redis_user(admin, org_id=org_id)
        await admin.aclose()
    assert username_for(org_id) not in (tmp_path / "users.acl").read_text()
