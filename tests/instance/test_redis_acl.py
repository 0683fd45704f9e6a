"""Per-org Redis ACL users on the real Redis: org A's user can touch nothing of org B's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from control_plane.redis_acl import (
    RedisAclError,
    delete_org_redis_user,
    ensure_org_redis_user,
    rotate_org_redis_user,
    username_for,
)
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import eventually

pytestmark = pytest.mark.redis


@pytest.fixture
async def admin() -> AsyncIterator[Redis]:
    need("Redis", redis_available())
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def two_orgs(admin: Redis) -> AsyncIterator[tuple[str, str, str]]:
    """Orgs A and B (unique ids), A's user URL; B's canary keys; everything removed after."""
    a, b = f"t{uuid.uuid4().hex[:12]}", f"t{uuid.uuid4().hex[:12]}"
    url = await ensure_org_redis_user(admin, org_id=a)
    await admin.set(f"org:{b}:canary", "B-canary")
    await admin.hset(f"org:{b}:hash", mapping={"k": "v"})
    try:
        yield a, b, url
    finally:
        for org in (a, b):
            await delete_org_redis_user(admin, org_id=org)
            keys = [k async for k in admin.scan_iter(match=f"org:{org}:*", count=100)]
            if keys:
                await admin.delete(*keys)


HOSTILE = [
    ("GET", "org:{b}:canary"),
    ("SET", "org:{b}:canary", "pwned"),
    ("DEL", "org:{b}:canary"),
    ("UNLINK", "org:{b}:canary"),
    ("EXPIRE", "org:{b}:canary", "1"),
    ("HGETALL", "org:{b}:hash"),
    ("EXISTS", "org:{b}:canary"),
    ("TYPE", "org:{b}:canary"),
    ("COPY", "org:{b}:canary", "org:{a}:stolen"),
    ("RENAME", "org:{b}:canary", "org:{a}:stolen"),
    ("DUMP", "org:{b}:canary"),
    ("KEYS", "*"),
    ("SCAN", "0"),
    ("SCAN", "0", "MATCH", "org:{a}:*"),
    ("RANDOMKEY",),
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "*"),
    ("CLIENT", "LIST"),
    ("SWAPDB", "0", "1"),
    ("DBSIZE",),
    ("INFO", "keyspace"),
    ("OBJECT", "ENCODING", "org:{b}:canary"),
    ("PUBLISH", "org:{b}:events", "x"),
    ("PUBSUB", "CHANNELS"),
    ("SCRIPT", "FLUSH"),
    ("FUNCTION", "LIST"),
    ("ACL", "LIST"),
    ("SORT", "org:{a}:list", "BY", "org:{b}:*"),
    ("EVAL", "return redis.call('GET', KEYS[1])", "1", "org:{b}:canary"),
    ("EVAL", "return redis.call('GET', 'org:{b}:canary')", "0"),
    ("EVAL", "return redis.call('KEYS', '*')", "0"),
]


async def test_org_a_cannot_read_write_list_or_flush_anything_of_org_b(
    admin: Redis, two_orgs: tuple[str, str, str]
) -> None:
    a, b, url = two_orgs
    client = Redis.from_url(url)
    try:
        assert await client.set(f"org:{a}:mine", "A")
        assert await client.get(f"org:{a}:mine") == b"A"
        for command in HOSTILE:
            args = [part.format(a=a, b=b) for part in command]
            with pytest.raises((NoPermissionError, ResponseError)) as denied:
                await client.execute_command(*args)
            assert "permission" in str(denied.value).lower() or "can't" in str(denied.value), args
    finally:
        await client.aclose()
    assert await admin.get(f"org:{b}:canary") == b"B-canary"
    assert await admin.hgetall(f"org:{b}:hash") == {b"k": b"v"}
    assert await admin.exists(f"org:{a}:stolen") == 0


async def test_every_denied_command_is_denied_by_the_acl_itself(
    admin: Redis, two_orgs: tuple[str, str, str]
) -> None:
    a, _, _ = two_orgs
    user = username_for(a)
    for command in (
        ["KEYS", "*"],
        ["SCAN", "0"],
        ["RANDOMKEY"],
        ["FLUSHALL"],
        ["FLUSHDB"],
        ["CONFIG", "GET", "*"],
        ["MONITOR"],
        ["CLIENT", "LIST"],
        ["CLIENT", "KILL", "ID", "1"],
        ["DEBUG", "SLEEP", "0"],
        ["SWAPDB", "0", "1"],
        ["SHUTDOWN"],
        ["MIGRATE", "h", "1", "k", "0", "1"],
    ):
        verdict = await admin.execute_command("ACL", "DRYRUN", user, *command)
        assert b"no permissions" in verdict, command
    ok = await admin.execute_command("ACL", "DRYRUN", user, "GET", f"org:{a}:x")
    assert ok == b"OK"


async def test_org_a_cannot_subscribe_to_org_b_or_to_patterns(
    two_orgs: tuple[str, str, str],
) -> None:
    a, b, url = two_orgs
    client = Redis.from_url(url)
    pubsub = client.pubsub()
    try:
        for channel in (f"org:{b}:events", "org:*", "*"):
            await pubsub.subscribe(channel)
            with pytest.raises(NoPermissionError):
                await pubsub.get_message(timeout=1)
        await pubsub.psubscribe("org:*")
        with pytest.raises(NoPermissionError):
            await pubsub.get_message(timeout=1)
    finally:
        await pubsub.aclose()
        await client.aclose()
    own = Redis.from_url(url)
    try:
        listener = own.pubsub()
        await listener.subscribe(f"org:{a}:events")
        assert (await listener.get_message(timeout=1))["type"] == "subscribe"
        await own.publish(f"org:{a}:events", "hello")
        message = await eventually(
            lambda: listener.get_message(ignore_subscribe_messages=True, timeout=0.2),
            what=f"the message on org:{a}:events",
            interval=0,
        )
        assert message["data"] == b"hello"
        await listener.aclose()
    finally:
        await own.aclose()


async def test_rotation_replaces_the_password_and_delete_is_idempotent(admin: Redis) -> None:
    org = f"t{uuid.uuid4().hex[:12]}"
    try:
        with pytest.raises(RedisAclError):
            await rotate_org_redis_user(admin, org_id=org)
        old = await ensure_org_redis_user(admin, org_id=org)
        new = await rotate_org_redis_user(admin, org_id=org)
        assert old != new
        stale = Redis.from_url(old)
        try:
            with pytest.raises(AuthenticationError):
                await stale.ping()
        finally:
            await stale.aclose()
        fresh = Redis.from_url(new)
        connected = Redis.from_url(new)
        try:
            assert await fresh.ping()
            assert await connected.ping()
            assert await delete_org_redis_user(admin, org_id=org) is True

            async def disconnected() -> bool:  # Redis closes the user's clients asynchronously
                clients = await admin.client_list()
                return all(c.get("user") != username_for(org) for c in clients)

            await eventually(disconnected, what="the deleted user's connections closed")
            with pytest.raises((ConnectionError, RedisConnectionError, AuthenticationError)):
                await connected.execute_command("GET", f"org:{org}:x")
        finally:
            await fresh.aclose()
            await connected.aclose()
        assert await delete_org_redis_user(admin, org_id=org) is False
    finally:
        await delete_org_redis_user(admin, org_id=org)


@pytest.mark.parametrize("hostile", ["*", "a*", "a b", "x:*", "a?", "", "a" * 65, "a\nb", "[ab]"])
async def test_org_ids_that_would_widen_the_patterns_are_refused(
    admin: Redis, hostile: str
) -> None:
    with pytest.raises(RedisAclError):
        await ensure_org_redis_user(admin, org_id=hostile)


def test_the_url_names_the_given_host(admin: Any) -> None:
    from control_plane.redis_acl import _url_for

    url = _url_for(admin, user="org-x", password="p/w", host="redis.internal")
    assert url == "redis://org-x:p%2Fw@redis.internal:6379/0"
