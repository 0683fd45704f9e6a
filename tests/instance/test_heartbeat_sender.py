"""The instance's heartbeat loop: body, sequence, jittered interval, backoff and resumption,
and limits adopted from the control plane's answer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from org_instance.app import create_app
from org_instance.heartbeat import HeartbeatSender, backoff_delay, first_beat_delay
from orgplane_wire.contract import HeartbeatBody, heartbeat_answer_key, heartbeat_key
from tests.instance.conftest import runtime_of
from tests.instance.helpers import FakeControlPlane, Signer, bearer, instance_config
from tests.instance.processes import free_port
from tests.support.api import assert_problem
from tests.support.faults import cancel_once_entered, hide_the_cancel
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import eventually

CP_URL = "http://cp.test"


def test_backoff_doubles_to_a_cap_with_ten_percent_jitter() -> None:
    rng = random.Random(7)
    for _ in range(200):
        assert 9.0 <= backoff_delay(10, 0, rng=rng) <= 11.0
    bases = [
        backoff_delay(10, n, rng=random.Random(1)) / random.Random(1).uniform(0.9, 1.1)
        for n in range(8)
    ]
    assert [round(b) for b in bases] == [10, 20, 40, 60, 60, 60, 60, 60]
    fast = [
        round(backoff_delay(0.5, n, rng=random.Random(1)) / random.Random(1).uniform(0.9, 1.1), 2)
        for n in range(6)
    ]
    assert fast == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_first_beat_goes_out_at_start_with_the_credential_and_a_full_body(
    tmp_path: Path, cp: FakeControlPlane
) -> None:
    config = instance_config(tmp_path, control_plane_url=CP_URL, heartbeat_interval=30)
    app = create_app(config, http=cp.client())
    async with AsyncTestClient(app, base_url="http://127.0.0.1"):
        await eventually(lambda: cp.heartbeats, what="the first heartbeat", interval=0.02)
    assert len(cp.heartbeats) == 1
    body: HeartbeatBody = cp.heartbeats[0]  # type: ignore[assignment]
    assert set(body) == set(HeartbeatBody.__annotations__)
    assert body["org_id"] == config.org_id
    assert body["instance_id"] == config.instance_id
    assert body["seq"] == 1
    assert body["status"] == "ok"
    assert body["db_ok"]
    assert body["redis_ok"]
    request = next(r for r in cp.requests if r.url.path.endswith("/heartbeat"))
    assert request.headers["authorization"] == f"Bearer {config.instance_credential}"


async def _run_scripted(
    make_instance: Any, cp: FakeControlPlane, plan: list[str | None], *, interval: float
) -> list[float]:
    """Run a sender whose attempts meet ``plan`` (a fault, or None for an answer) in turn;
    the waits it asked for, the last one ending the run."""
    async with make_instance(control_plane_url="", heartbeat_interval=interval) as client:
        runtime = runtime_of(client)
        delays: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            delays.append(seconds)
            if len(delays) >= len(plan):
                raise asyncio.CancelledError
            cp.heartbeat_fault = plan[len(delays)]

        cp.heartbeat_fault = plan[0]
        cp.answer = {**cp.answer, "interval": interval}
        runtime.config = dataclasses.replace(runtime.config, control_plane_url=CP_URL)
        sender = HeartbeatSender(
            runtime=runtime, http=cp.client(), sleep=fake_sleep, rng=random.Random(3)
        )
        with contextlib.suppress(asyncio.CancelledError):
            await sender.run()
    return delays


async def test_the_loop_backs_off_while_the_control_plane_is_down_and_resumes(
    make_instance: Any, cp: FakeControlPlane
) -> None:
    # Heard once, then away: the usual backoff (a first beat that fails retries faster).
    plan = [None, "down", "down", "down", None, None]
    delays = await _run_scripted(make_instance, cp, plan, interval=1.0)
    assert [round(d) for d in delays] == [1, 2, 4, 8, 1, 1]
    assert [b["seq"] for b in cp.heartbeats] == [1, 5, 6]
    attempts = [r for r in cp.requests if r.url.path.endswith("/heartbeat")]
    assert len(attempts) == 6


def test_a_failed_first_beat_is_retried_fast_then_backs_off_as_usual() -> None:
    def bases(interval: float) -> list[float]:
        return [
            round(
                first_beat_delay(interval, n, rng=random.Random(1))
                / random.Random(1).uniform(0.9, 1.1),
                2,
            )
            for n in range(1, 9)
        ]

    assert bases(10) == [0.5, 1.0, 2.0, 4.0, 8.0, 20.0, 40.0, 60.0]
    assert bases(1.0) == [0.5, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert bases(0.05) == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]  # no fast retry: as before


async def test_an_instance_whose_first_beat_fails_is_heard_within_a_second(
    make_instance: Any, cp: FakeControlPlane
) -> None:
    """A starting instance is not ``running`` until a heartbeat of its run is accepted: one
    failed first attempt must not cost it twice the interval (20 s at the default)."""
    delays = await _run_scripted(make_instance, cp, ["down", "down", None, None], interval=10.0)
    # Heard about 1.5 s after its first try (0.5 s, then 1 s, each with jitter), not 20 s.
    assert 0.45 <= delays[0] <= 0.55
    assert 0.9 <= delays[1] <= 1.1
    assert 9.0 <= delays[2] <= 11.0  # accepted: the interval from then on
    assert [b["seq"] for b in cp.heartbeats] == [3, 4]


async def test_new_limits_from_the_answer_are_enforced(
    make_instance: Any, cp: FakeControlPlane, signer: Signer
) -> None:
    async with make_instance(limits={"max_sessions": 100}) as client:
        runtime = runtime_of(client)
        org = runtime.config.org_id
        who = bearer(signer.token(org))
        assert (await client.post("/api/v1/sessions", headers=who, json={})).status_code == 201
        cp.answer = {
            "accepted": True,
            "config_version": 7,
            "interval": 2.5,
            "limits": {"max_sessions": 1, "max_future_thing": 3},
        }
        runtime.config = dataclasses.replace(runtime.config, control_plane_url=CP_URL)
        sender = HeartbeatSender(runtime=runtime, http=cp.client())
        await sender.beat()
        await sender.beat()
        assert [b["seq"] for b in cp.heartbeats] == [1, 2]
        assert sender.interval == 2.5
        assert runtime.limits.config_version == 7
        assert runtime.limits.values == {"max_sessions": 1}
        assert cp.heartbeats[1]["usage"]["sessions"] == 1
        assert_problem(
            await client.post("/api/v1/sessions", headers=who, json={}), 403, "quota_exceeded"
        )
        usage = (await client.get("/api/v1/usage", headers=who)).json()
        assert usage["limits"] == {"max_sessions": 1}
        assert usage["config_version"] == 7


class _HidesCancel(HeartbeatSender):
    """Fault injection: a beat that meets its cancellation the way redis-py can report it
    (redis/redis-py#2665): as ``ConnectionError``, or not at all."""

    quietly = False

    async def beat(self) -> dict[str, Any]:
        await hide_the_cancel(self.entered, quietly=self.quietly)
        return {}


@pytest.mark.parametrize("quietly", [False, True], ids=["as-an-error", "quietly"])
async def test_a_cancelled_sender_stops_when_the_client_hides_the_cancel(
    make_instance: Any, cp: FakeControlPlane, quietly: bool
) -> None:
    async with make_instance(control_plane_url="", heartbeat_interval=0.05) as client:
        sender = _HidesCancel(runtime=runtime_of(client), http=cp.client())
        sender.entered, sender.quietly = asyncio.Event(), quietly
        await cancel_once_entered(asyncio.create_task(sender.run()), sender.entered)
        assert sender.failures == 0  # a stop, not a failed beat


async def test_a_heartbeat_over_redis_is_its_own_check_of_redis(
    make_instance: Any, cp: FakeControlPlane
) -> None:
    """Over Redis the heartbeat's SET and GET check Redis: no PING of its own (one round trip
    per org and interval fewer). When they fail, the heartbeat it posts instead says Redis is
    not ok. Failed on the old code: every heartbeat pinged Redis first."""
    need("Redis", redis_available())
    async with make_instance(control_plane_url="", redis_url=REDIS_URL) as client:
        shared = runtime_of(client)
        org_id = shared.config.org_id
        # The sender's own runtime, with a Redis client of this test's event loop: the app's
        # own client may already hold connections of the loop its start-up ran on.
        runtime = dataclasses.replace(
            shared,
            config=dataclasses.replace(shared.config, control_plane_url=CP_URL),
            redis=Redis.from_url(REDIS_URL),
        )
        mine = runtime.redis
        pings: list[int] = []
        checked = runtime.redis_ok

        async def counted() -> bool:
            pings.append(1)
            return await checked()

        runtime.redis_ok = counted  # type: ignore[method-assign]
        admin = Redis.from_url(REDIS_URL)
        try:
            answer = {**cp.answer, "via": "redis", "contract_version": 1, "accepted": True}
            await admin.set(heartbeat_answer_key(org_id), json.dumps(answer), ex=30)
            sender = HeartbeatSender(runtime=runtime, http=cp.client())
            sender.via_redis = True
            await sender.beat()
            assert pings == []
            left = json.loads(await admin.get(heartbeat_key(org_id)) or b"{}")
            assert left["seq"] == 1
            assert left["redis_ok"] is True
            assert not cp.heartbeats
            runtime.redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # Redis away
            await sender.beat()
            (posted,) = cp.heartbeats
            assert posted["redis_ok"] is False
            assert posted["status"] == "degraded"
        finally:
            await admin.delete(heartbeat_key(org_id), heartbeat_answer_key(org_id))
            await admin.aclose()
            await mine.aclose()
