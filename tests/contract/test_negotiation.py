"""Contract version negotiation in the heartbeat: the control plane's side (HTTP and the Redis
transport), the instance row and API, and the instance's side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select
from structlog.testing import capture_logs

from control_plane.db.models import AuditEvent, InstanceEvent
from control_plane.instances.ingest import RedisHeartbeats
from org_instance.app import create_app
from org_instance.heartbeat import HeartbeatRefused, HeartbeatSender
from orgplane_wire.contract import CONTRACT_VERSION, HEARTBEAT_PATH, heartbeat_answer_key
from tests.instance.helpers import instance_config
from tests.instance.test_heartbeat_endpoint import beat, body, make_instance_row, rows
from tests.scale.test_heartbeats_redis_reader import (  # noqa: F401 - fixtures
    leave,
    reader,
    redis,
    registered,
    settings,
)
from tests.support.api import assert_problem, direct_db
from tests.support.wait import eventually


async def _nothing_recorded(client: AsyncTestClient[Any], org_id: str) -> None:
    instance, samples = await rows(client, org_id)
    assert (instance.last_heartbeat_seq, instance.last_heartbeat_at) == (0, None)
    assert instance.contract_version is None
    assert instance.usage_reported == {}
    assert samples == []
    async with direct_db(client) as db:
        events = (await db.exec(select(InstanceEvent).where(InstanceEvent.org_id == org_id))).all()
        audit = (await db.exec(select(AuditEvent).where(AuditEvent.org_id == org_id))).all()
    assert events == []
    assert [a.action for a in audit] == ["instance.credential_issued"]


async def test_an_unsupported_version_is_refused_409_before_the_body_and_changes_nothing(
    client: AsyncTestClient[Any],
) -> None:
    org_id, credential = await make_instance_row(client, "cv-refused")
    newer = {**body(org_id, 1, requests=5), "contract_version": 2}
    refused = await beat(client, credential, newer)
    problem = assert_problem(refused, 409, "contract_version_unsupported")
    assert problem["supported"] == [1]
    # A newer body may carry fields this version does not know: still the version's 409.
    with_new_field = {**newer, "capabilities": ["v2-only"]}
    problem = assert_problem(await beat(client, credential, with_new_field), 409)
    assert problem["code"] == "contract_version_unsupported"
    # A number in a string passes Litestar's lax decoding: refused by the handler alike.
    as_text = {**body(org_id, 1), "contract_version": "2"}
    assert_problem(await beat(client, credential, as_text), 409, "contract_version_unsupported")
    await _nothing_recorded(client, org_id)
    # Not a version at all: the body is invalid (400), not a negotiation.
    for bad in (0, -1, 1.5, "two", [1], {"v": 1}):
        answer = await beat(client, credential, {**body(org_id, 1), "contract_version": bad})
        assert answer.status_code == 400, (bad, answer.text)
    # Nested deeper than msgspec can decode (it raised RecursionError here, a 500): 400.
    deep = b'{"contract_version": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = await client.post(
        HEARTBEAT_PATH,
        content=deep,
        headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
    )
    assert_problem(answer, 400, "malformed_body")
    await _nothing_recorded(client, org_id)


async def test_the_negotiated_version_is_answered_recorded_and_shown_by_the_api(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    org_id, credential = await make_instance_row(client, "cv-ok")
    shown = await client.get(f"/api/v1/orgs/{org_id}/instance", headers=admin)
    assert shown.status_code == 200, shown.text
    assert shown.json()["contract_version"] is None
    implied = await beat(client, credential, body(org_id, 1))  # no version: an older instance
    assert implied.status_code == 200, implied.text
    assert implied.json()["contract_version"] == 1
    assert (await rows(client, org_id))[0].contract_version == 1
    explicit = await beat(client, credential, {**body(org_id, 2), "contract_version": 1})
    # The body reports no config_version: the org's branding comes with the beats that write
    # (the first of a run does), not with an unchanged one.
    first = implied.json()
    assert first.pop("branding")["display_name"] == "cv-ok"
    assert explicit.json() == {**first, "contract_version": 1}
    shown = await client.get(f"/api/v1/orgs/{org_id}/instance", headers=admin)
    assert shown.json()["contract_version"] == 1


async def test_the_redis_reader_ignores_a_heartbeat_in_an_unsupported_version(
    client: AsyncTestClient[Any],
    redis: Any,  # noqa: F811 - the imported fixture
    reader: RedisHeartbeats,  # noqa: F811 - the imported fixture
) -> None:
    org_id, _ = await registered(client, "cv-redis")
    await leave(redis, org_id, body(org_id, 2, requests=4), contract_version=2)
    report = await reader.poll()
    assert (report.new, report.invalid, report.accepted, report.answered) == (1, 1, 0, 0)
    assert (await rows(client, org_id))[0].last_heartbeat_seq == 1
    assert await redis.get(heartbeat_answer_key(org_id)) is None

    await leave(redis, org_id, body(org_id, 3, requests=4), contract_version=1)
    report = await reader.poll()
    assert (report.invalid, report.accepted, report.answered) == (0, 1, 1)
    answer = msgspec.json.decode(await redis.get(heartbeat_answer_key(org_id)))
    assert answer["contract_version"] == 1
    assert answer["via"] == "redis"
    instance = (await rows(client, org_id))[0]
    assert (instance.last_heartbeat_seq, instance.contract_version) == (3, 1)


def _control_plane(answers: list[httpx.Response], sent: list[dict[str, Any]]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != HEARTBEAT_PATH:
            return httpx.Response(404)
        sent.append(json.loads(request.content))
        return answers[min(len(sent), len(answers)) - 1]

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


OK = {"accepted": True, "config_version": 1, "interval": 30.0, "limits": {}}


async def test_the_instance_sends_its_version_and_refuses_an_answer_in_another(
    tmp_path: Path,
) -> None:
    sent: list[dict[str, Any]] = []
    answers = [
        httpx.Response(200, json={**OK, "contract_version": 2}),
        httpx.Response(200, json=OK),  # a control plane from before negotiation: version 1
        httpx.Response(200, json={**OK, "contract_version": 1}),
    ]
    config = instance_config(tmp_path, control_plane_url="http://cp.test", heartbeat_interval=30)
    app = create_app(config, http=_control_plane(answers, sent))
    async with app.lifespan():
        await eventually(lambda: sent, what="the first heartbeat", interval=0.02)
        runtime = app.state.instance
        await eventually(lambda: runtime.heartbeat is not None, what="the sender")
        sender: HeartbeatSender = runtime.heartbeat
        assert sent[0]["contract_version"] == CONTRACT_VERSION
        assert sender.accepted == 0  # the answer in version 2 was not applied
        assert sender.contract_version is None
        answer = await sender.beat()
        assert "contract_version" not in answer
        assert (sender.accepted, sender.contract_version) == (1, 1)
        await sender.beat()
        assert (sender.accepted, sender.contract_version) == (2, 1)
        assert [b["contract_version"] for b in sent[:3]] == [CONTRACT_VERSION] * 3


async def test_a_refused_version_is_logged_with_what_the_control_plane_supports(
    tmp_path: Path,
) -> None:
    sent: list[dict[str, Any]] = []
    refusal = httpx.Response(
        409,
        json={"code": "contract_version_unsupported", "supported": [2, 3]},
        headers={"content-type": "application/problem+json"},
    )
    config = instance_config(tmp_path, control_plane_url="http://cp.test", heartbeat_interval=30)
    app = create_app(config, http=_control_plane([refusal], sent))
    async with app.lifespan():
        await eventually(lambda: app.state.instance.heartbeat is not None, what="the sender")
        sender: HeartbeatSender = app.state.instance.heartbeat
        with (
            capture_logs() as logs,
            pytest.raises(HeartbeatRefused, match="409 contract_version_unsupported"),
        ):
            await sender.beat()
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors[0]["supported"] == [2, 3]
    assert errors[0]["contract_version"] == CONTRACT_VERSION
    assert sender.accepted == 0
