"""The SDK's heartbeat sender against a fake control plane (httpx.MockTransport): what it
sends, what it adopts from the answer, and how it waits between beats, with the loop's sleep
replaced by one that records the delay (no test waits in real time)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import httpx
import pytest
from orgplane_sdk.contract import CONTRACT_VERSION, HEARTBEAT_PATH, heartbeat_backoff_cap
from orgplane_sdk.heartbeat import HeartbeatRefused, HeartbeatSender, next_delay

from tests.instance.helpers import ISSUER, FakeControlPlane

CREDENTIAL = "opi_org.test-credential-0123456789"


class Sleeps:
    """The loop's sleep: records each delay, calls ``at[n]`` after the n-th, and ends the loop
    (CancelledError) after ``limit`` of them."""

    def __init__(self, limit: int, at: dict[int, Callable[[], None]] | None = None) -> None:
        self.delays: list[float] = []
        self.limit = limit
        self.at = at or {}

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.at.get(len(self.delays), lambda: None)()
        if len(self.delays) >= self.limit:
            raise asyncio.CancelledError


def sender(http: httpx.AsyncClient, sleeps: Sleeps | None = None, **kw: object) -> HeartbeatSender:
    return HeartbeatSender(
        control_plane_url=ISSUER + "/",
        credential=CREDENTIAL,
        org_id="org-1",
        instance_id="inst-1",
        version="1.2.3",
        http=http,
        sleep=sleeps or Sleeps(1),
        rng=random.Random(7),
        **kw,  # type: ignore[arg-type]
    )


async def test_a_heartbeat_carries_the_contract_and_the_credential() -> None:
    cp = FakeControlPlane(signers=[])
    cp.answer = {
        "accepted": True,
        "config_version": 4,
        "interval": 2.5,
        "limits": {"max_sessions": 3},
    }
    beats = sender(cp.client(), interval=10.0)
    await beats.beat()
    await beats.beat()
    first, second = cp.heartbeats
    assert first["contract_version"] == CONTRACT_VERSION == 1
    assert (first["org_id"], first["instance_id"], first["version"]) == ("org-1", "inst-1", "1.2.3")
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["status"] == "ok"
    assert first["db_ok"]
    assert first["redis_ok"]
    assert first["config_version"] == 0
    assert second["config_version"] == 4
    request = cp.requests[0]
    assert request.method == "POST"
    assert str(request.url) == ISSUER + HEARTBEAT_PATH
    assert request.headers["authorization"] == f"Bearer {CREDENTIAL}"
    # The answer's interval and limits are adopted.
    assert beats.interval == 2.5
    assert beats.limits == {"max_sessions": 3}


async def test_a_failing_health_check_reports_degraded() -> None:
    cp = FakeControlPlane(signers=[])

    async def no_db() -> tuple[bool, bool]:
        return False, True

    await sender(cp.client(), health=no_db).beat()
    assert cp.heartbeats[0]["status"] == "degraded"
    assert cp.heartbeats[0]["db_ok"] is False


async def test_an_unsupported_contract_version_is_a_refusal_naming_the_supported_ones() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        body = {"code": "contract_version_unsupported", "supported": [2], "status": 409}
        return httpx.Response(409, json=body, headers={"content-type": "application/problem+json"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    with pytest.raises(HeartbeatRefused, match=r"409 contract_version_unsupported.*\[2\]"):
        await sender(http).beat()


@pytest.mark.parametrize(
    ("interval", "bases"),
    [
        # Before any beat was accepted: 0.5 s, doubling while shorter than the interval; then
        # as after a first failure (two intervals), doubling to the contract's cap (8
        # intervals, at most 60 s, at least one). The same waits as orgplane's own instance.
        (1.0, [0.5, 2, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8]),
        (10.0, [0.5, 1, 2, 4, 8, 20, 40, 60, 60, 60, 60, 60]),
        (30.0, [0.5, 1, 2, 4, 8, 16, 60, 60, 60, 60, 60, 60]),
    ],
)
async def test_the_loop_backs_off_while_the_control_plane_is_away_then_resumes(
    interval: float, bases: list[float]
) -> None:
    cp = FakeControlPlane(signers=[])
    cp.heartbeat_fault = "down"
    cp.answer["interval"] = interval / 2

    def recover() -> None:
        cp.heartbeat_fault = None

    sleeps = Sleeps(limit=14, at={12: recover})  # 12 failed attempts, then 2 accepted
    beats = sender(cp.client(), sleeps, interval=interval)
    with pytest.raises(asyncio.CancelledError):
        await beats.run()
    failing, after = sleeps.delays[:12], sleeps.delays[12:]
    assert all(b * 0.9 <= d <= b * 1.1 for b, d in zip(bases, failing, strict=True)), failing
    assert max(failing) <= heartbeat_backoff_cap(interval) * 1.1
    # Back to one interval (±10%) once a beat is accepted: the one its answer names.
    assert len(after) == 2
    assert all(interval / 2 * 0.9 <= d <= interval / 2 * 1.1 for d in after)
    assert beats.failures == 0
    assert beats.accepted == 2


def test_after_an_accepted_beat_failures_back_off_from_the_interval() -> None:
    rng = random.Random(1)
    delays = [next_delay(10.0, n, True, rng) for n in range(6)]
    bases = [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]  # doubling to the cap (60 s for 10 s)
    assert all(b * 0.9 <= d <= b * 1.1 for b, d in zip(bases, delays, strict=True))


async def test_a_garbled_answer_is_a_failure_and_changes_nothing() -> None:
    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    beats = sender(httpx.AsyncClient(transport=httpx.MockTransport(garbage)), interval=5.0)
    with pytest.raises(HeartbeatRefused, match="200"):
        await beats.beat()
    assert beats.interval == 5.0
    assert beats.accepted == 0
    assert beats.limits == {}


async def test_a_control_plane_from_before_version_negotiation_gets_no_version() -> None:
    # Such a control plane refuses unknown fields (a 400 naming the field); absent means 1.
    cp = FakeControlPlane(signers=[])
    refused: list[dict[str, object]] = []

    def strict(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "contract_version" in body:
            refused.append(body)
            problem = {"code": "validation_error", "detail": "unknown field `contract_version`"}
            return httpx.Response(400, json=problem)
        return cp.handler(request)

    beats = sender(httpx.AsyncClient(transport=httpx.MockTransport(strict)))
    await beats.beat()
    await beats.beat()
    assert len(refused) == 1
    assert [b["seq"] for b in cp.heartbeats] == [1, 2]
    assert all("contract_version" not in b for b in cp.heartbeats)
    assert beats.accepted == 2
