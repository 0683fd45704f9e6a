"""The batch reader of heartbeats left in Redis (``control_plane.instances.ingest``), on SQLite
and PostgreSQL with real Redis: it writes what changed or is due and nothing else, answers with
the configuration, and ignores whatever is not a heartbeat of the key's org."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from control_plane.app import create_app
from control_plane.db.engine import make_sessionmaker
from control_plane.db.models import Instance, Org, utcnow
from control_plane.instances.ingest import (
    MAX_HEARTBEAT_BYTES,
    PollReport,
    RedisHeartbeats,
    reader_lock,
)
from control_plane.settings import Settings
from orgplane_wire.contract import heartbeat_answer_key, heartbeat_key
from tests.instance.test_heartbeat_endpoint import STARTED, beat, body, make_instance_row, rows
from tests.scale.statements import of_kind, statements_on
from tests.support.api import direct_db, runtime_of
from tests.support.faults import cancel_once_entered, hide_the_cancel
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import eventually


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    need("Redis", redis_available())
    # ``http``: the app starts no reader of its own; the tests drive one poll at a time.
    result: Settings = make_settings(
        ORGPLANE_REDIS_URL=REDIS_URL,
        ORGPLANE_HEARTBEAT_TRANSPORT="http",
        ORGPLANE_HEARTBEAT_POLL_SECONDS="0.1",
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    return result


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def reader(client: AsyncTestClient[Any], redis: Any) -> AsyncIterator[RedisHeartbeats]:
    # The app runs in the test client's own event loop: the reader gets an engine of this one.
    app_runtime = runtime_of(client)
    engine = create_async_engine(
        app_runtime.engine.url.render_as_string(hide_password=False), poolclass=NullPool
    )
    runtime = dataclasses.replace(app_runtime, engine=engine, sessions=make_sessionmaker(engine))
    made = RedisHeartbeats(runtime, redis)
    yield made
    keys = [k for org in made.seen for k in (heartbeat_key(org), heartbeat_answer_key(org))]
    if keys:
        await redis.delete(*keys)
    await engine.dispose()


async def registered(client: AsyncTestClient[Any], slug: str, **usage: int) -> tuple[str, str]:
    """An org whose instance registered its run with a first POST (seq 1)."""
    org_id, credential = await make_instance_row(client, slug)
    first = await beat(client, credential, body(org_id, 1, **usage))
    assert first.json()["accepted"] is True
    return org_id, credential


async def leave(redis: Any, org_id: str, payload: Any, **extra: Any) -> None:
    raw = payload if isinstance(payload, bytes) else msgspec.json.encode({**payload, **extra})
    await redis.set(heartbeat_key(org_id), raw)


async def age_row(client: AsyncTestClient[Any], org_id: str, seconds: float) -> None:
    async with direct_db(client) as db:
        await db.exec(
            update(Instance)
            .where(Instance.org_id == org_id)  # type: ignore[arg-type]
            .values(last_heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )
        await db.commit()


async def test_a_poll_writes_changed_and_due_heartbeats_only_and_answers(
    client: AsyncTestClient[Any], redis: Any, reader: RedisHeartbeats
) -> None:
    quiet, _ = await registered(client, "rd-quiet", requests=3)
    active, _ = await registered(client, "rd-active", requests=3)
    due, _ = await registered(client, "rd-due", requests=3)
    await age_row(client, due, 20)  # older than 1.5 intervals of 10 s
    before = {org: (await rows(client, org))[0] for org in (quiet, active, due)}
    for org in (quiet, active, due):
        await leave(redis, org, body(org, 2, requests=3), config_version=1)
    await leave(redis, active, body(active, 2, requests=8), config_version=1)

    report = await reader.poll()

    assert (report.keys, report.new, report.invalid) == (3, 3, 0)
    assert (report.accepted, report.written, report.answered) == (3, 2, 3)
    after = {org: await rows(client, org) for org in (quiet, active, due)}
    assert after[quiet][0].last_heartbeat_seq == 1
    assert after[quiet][0].last_heartbeat_at == before[quiet].last_heartbeat_at
    assert after[due][0].last_heartbeat_seq == 2
    assert after[due][0].last_heartbeat_at > before[due].last_heartbeat_at  # type: ignore[operator]
    assert after[active][0].last_heartbeat_seq == 2
    assert after[active][0].last_active_at is not None
    assert [s.requests for s in after[active][1]] == [8]  # 3 from the POST, 5 more from Redis
    assert after[active][0].usage_reported["counters"]["requests"] == 8
    answer = msgspec.json.decode(await redis.get(heartbeat_answer_key(quiet)))
    assert answer["via"] == "redis"
    assert answer["config_version"] == 1
    assert answer["limits"]["max_sessions"] == 7
    assert 0 < await redis.ttl(heartbeat_answer_key(quiet)) <= 30

    # Nothing new in Redis: one query for the registered orgs, no decoding, no write.
    with statements_on(reader.runtime.engine) as seen:
        again = await reader.poll()
    assert (again.new, again.accepted, again.written) == (0, 0, 0)
    assert len(seen) == 1
    assert of_kind(seen, "SELECT", "instance")


async def test_an_instance_behind_its_orgs_configuration_gets_a_new_answer(
    client: AsyncTestClient[Any], redis: Any, reader: RedisHeartbeats
) -> None:
    org_id, _ = await registered(client, "rd-config")
    await leave(redis, org_id, body(org_id, 2), config_version=1)
    await reader.poll()
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        org.limits, org.config_version = {"max_sessions": 2}, 2
        db.add(org)
        await db.commit()
    await leave(redis, org_id, body(org_id, 3), config_version=1)
    report = await reader.poll()
    assert report.answered == 1
    answer = msgspec.json.decode(await redis.get(heartbeat_answer_key(org_id)))
    assert (answer["config_version"], answer["limits"]["max_sessions"]) == (2, 2)
    # Once the instance runs the new version, the answer is only kept alive.
    await leave(redis, org_id, body(org_id, 4), config_version=2)
    assert (await reader.poll()).answered == 0


async def test_what_is_not_a_heartbeat_of_the_keys_org_is_ignored(
    client: AsyncTestClient[Any], redis: Any, reader: RedisHeartbeats
) -> None:
    org_id, _ = await registered(client, "rd-bad", requests=1)
    other, _ = await registered(client, "rd-other", requests=1)
    await age_row(client, org_id, 20)  # any accepted heartbeat would be written
    written, _ = await rows(client, org_id)
    later = STARTED + timedelta(minutes=1)
    bad: list[Any] = [
        body(other, 9, requests=50),  # another org's heartbeat in this org's key
        b"{not json",
        msgspec.json.encode({**body(org_id, 9), "status": "dead"}),
        b"x" * (MAX_HEARTBEAT_BYTES + 1),
        body(org_id, 1, requests=50),  # a replay of the registered seq
        body(org_id, 9, started=later, requests=50),  # a run that never registered
    ]
    invalid = 0
    for value in bad:
        await leave(redis, org_id, value)
        report = await reader.poll()
        invalid += report.invalid
        assert report.written == 0
    await redis.delete(heartbeat_key(org_id))
    await redis.hset(heartbeat_key(org_id), "seq", "9")  # not even a string
    invalid += (await reader.poll()).invalid
    assert invalid == 5
    instance, samples = await rows(client, org_id)
    assert instance.last_heartbeat_seq == 1
    assert instance.last_heartbeat_at == written.last_heartbeat_at
    assert [s.requests for s in samples] == [1]
    assert await redis.get(heartbeat_answer_key(org_id)) is None
    await redis.delete(heartbeat_key(org_id))
    assert (await rows(client, other))[0].last_heartbeat_seq == 1


async def test_one_replica_reads_at_a_time_and_another_takes_over(
    redis: Any, reader: RedisHeartbeats
) -> None:
    polls: Counter[str] = Counter()

    class Counted(RedisHeartbeats):
        name = ""

        async def poll(self) -> PollReport:
            polls[self.name] += 1
            return PollReport()

    first, second = Counted(reader.runtime, redis), Counted(reader.runtime, redis)
    first.name, second.name = "first", "second"
    one = asyncio.create_task(first.run_forever())
    await eventually(lambda: polls["first"] >= 1, what="the first replica reading")
    two = asyncio.create_task(second.run_forever())
    try:
        # Six periods of the first replica (0.1 s each): the second, on the same period, tried
        # the lock about as often meanwhile, and must not have read once.
        await eventually(lambda: polls["first"] >= 6, what="six reads by the first replica")
        assert polls["second"] == 0
        assert await redis.exists(reader_lock(reader.runtime))
        one.cancel()  # a replica shutting down gives the lock back
        with contextlib.suppress(asyncio.CancelledError):
            await one
        await eventually(lambda: polls["second"] >= 2, what="the second replica taking over")
    finally:
        for task in (one, two):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert not await redis.exists(reader_lock(reader.runtime))


class _HidesCancel(RedisHeartbeats):
    """Fault injection: a poll that meets its cancellation the way redis-py can report it
    (redis/redis-py#2665), as ``ConnectionError`` or not at all."""

    quietly = False

    async def poll(self) -> PollReport:
        await hide_the_cancel(self.entered, quietly=self.quietly)
        return PollReport()


@pytest.mark.parametrize("quietly", [False, True], ids=["as-an-error", "quietly"])
async def test_a_cancelled_reader_stops_when_the_client_hides_the_cancel(
    redis: Any, reader: RedisHeartbeats, quietly: bool
) -> None:
    hiding = _HidesCancel(reader.runtime, redis)
    hiding.entered, hiding.quietly = asyncio.Event(), quietly
    await cancel_once_entered(asyncio.create_task(hiding.run_forever()), hiding.entered)
    assert not await redis.exists(reader_lock(reader.runtime))  # the lock was given back


async def test_the_real_reader_stops_whenever_it_is_cancelled(
    redis: Any, reader: RedisHeartbeats
) -> None:
    """The same, unaided: real Redis, a real poll, cancelled at 100 random moments (seed 7).
    Before the reader checked for a pending cancel, several of the first ten did not stop."""
    rng = random.Random(7)
    for attempt in range(100):
        task = asyncio.create_task(RedisHeartbeats(reader.runtime, redis).run_forever())
        await asyncio.sleep(rng.uniform(0, 0.004))  # a random moment: the time is the point
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, f"cancel {attempt} did not stop the reader"


@pytest.mark.parametrize("transport", ["http", "redis"])
async def test_the_transport_decides_whether_instances_move_to_redis(
    make_settings: Any, redis: Any, transport: str
) -> None:
    """``redis``: the answer to a run's first POST sends the instance to Redis (and is left
    there); ``http``: the instance keeps posting (ORGPLANE_HEARTBEAT_TRANSPORT)."""
    need("Redis", redis_available())
    settings = make_settings(
        ORGPLANE_REDIS_URL=REDIS_URL,
        ORGPLANE_HEARTBEAT_TRANSPORT=transport,
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        org_id, credential = await make_instance_row(client, f"rd-{transport}")
        try:
            first = await beat(client, credential, body(org_id, 1))
            left = await redis.exists(heartbeat_answer_key(org_id))
        finally:
            await redis.delete(heartbeat_key(org_id), heartbeat_answer_key(org_id))
    assert first.json()["accepted"] is True
    if transport == "redis":
        assert first.json()["via"] == "redis"
        assert left == 1
    else:
        assert "via" not in first.json()
        assert left == 0


@pytest.mark.parametrize(("poll", "interval", "period"), [("0.3", "10", 0.3), ("5", "0.5", 0.25)])
async def test_the_reader_polls_every_poll_seconds_at_most_half_an_interval(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, poll: str, interval: str, period: float
) -> None:
    """The app's own reader (redis transport) reads every ORGPLANE_HEARTBEAT_POLL_SECONDS,
    and at least twice per heartbeat interval."""
    need("Redis", redis_available())
    polled: list[float] = []
    real_poll = RedisHeartbeats.poll

    async def timed(self: RedisHeartbeats) -> Any:
        polled.append(time.monotonic())
        return await real_poll(self)

    monkeypatch.setattr(RedisHeartbeats, "poll", timed)
    settings = make_settings(
        ORGPLANE_REDIS_URL=REDIS_URL,
        ORGPLANE_HEARTBEAT_TRANSPORT="redis",
        ORGPLANE_HEARTBEAT_POLL_SECONDS=poll,
        ORGPLANE_HEARTBEAT_INTERVAL=interval,
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080"):
        await eventually(lambda: len(polled) >= 4, what="four polls")
    gaps = [b - a for a, b in itertools.pairwise(polled)][:3]
    assert all(period * 0.8 <= gap < period + 1.0 for gap in gaps), gaps
