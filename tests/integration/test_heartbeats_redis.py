"""Heartbeats over Redis, end to end: a real control plane, real local instances, real Redis
with per-org ACL users.

After the first ``POST`` of a run, an instance's heartbeats go to its own Redis namespace and
the control plane reads them in batches: the row keeps being refreshed while the HTTP endpoint
hears nothing more, a limit changed through the API reaches the instance through the answer
left in Redis, and an instance whose answer disappears goes back to posting.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from control_plane.db.models import Instance
from control_plane.instances.gate import GateEntry
from orgplane_wire.contract import heartbeat_answer_key, heartbeat_key
from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import eventually


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any, unused_tcp_port: int) -> Any:
    need("Redis", redis_available())
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
        ORGPLANE_REDIS_URL=REDIS_URL,
        ORGPLANE_HEARTBEAT_POLL_SECONDS="0.3",
    )
    admin = aioredis.from_url(REDIS_URL)
    async with (
        serve_control_plane(settings, unused_tcp_port) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{unused_tcp_port}", timeout=20) as http,
    ):
        yield http, app, admin
    await admin.aclose()


async def posted(admin: Any, org_id: str) -> int:
    """Heartbeat POSTs the control plane has counted for the org (its gate entry)."""
    raw = await admin.get(f"orgplane:ratelimit:heartbeat:last:{org_id}")
    return msgspec.json.decode(raw, type=GateEntry).attempts if raw else 0


async def row(app: Any, org_id: str) -> Instance:
    async with app.state.runtime.sessions() as db:
        found = await db.get(Instance, org_id)
        assert found is not None
        return found


async def test_heartbeats_move_to_redis_after_the_first_post(live: Any) -> None:
    http, app, admin = live
    headers = await admin_headers(app, http)
    created = await http.post(
        "/api/v1/orgs", headers=headers, json={"name": "Redis beats", "slug": "rbeat"}
    )
    assert created.status_code == 202, created.text
    org_id = created.json()["id"]
    running = await wait_phase(http, headers, "rbeat", "running")

    # The beats after the first are left in the org's namespace; the answer says via redis.
    async def beating_in_redis() -> bool:
        raw = await admin.get(heartbeat_key(org_id))
        return raw is not None and msgspec.json.decode(raw)["seq"] >= 3

    await eventually(beating_in_redis, what="heartbeats in Redis", interval=0.2)
    answer = msgspec.json.decode(await admin.get(heartbeat_answer_key(org_id)))
    assert answer["via"] == "redis"
    assert answer["interval"] == 1.0

    # The row is refreshed from Redis (due writes every 1.5 intervals) with no POST.
    posts = await posted(admin, org_id)
    seq = (await row(app, org_id)).last_heartbeat_seq

    async def refreshed() -> bool:
        return (await row(app, org_id)).last_heartbeat_seq >= seq + 2

    await eventually(refreshed, what="the row refreshed from Redis", interval=0.2)
    assert await posted(admin, org_id) == posts
    state = await http.get("/api/v1/orgs/rbeat/instance", headers=headers)
    assert state.json()["phase"] == "running"
    assert state.json()["health"] == "ok"

    # A limit changed through the API reaches the instance through the answer in Redis.
    token = await org_token(http, headers, "rbeat")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=running["endpoint"], headers=auth) as inst:
        assert (await inst.post("/api/v1/sessions", json={"title": "one"})).status_code == 201
        patched = await http.patch(
            f"/api/v1/orgs/{org_id}", headers=headers, json={"limits": {"max_sessions": 1}}
        )
        assert patched.status_code == 200, patched.text
        version = patched.json()["config_version"]

        async def answered() -> bool:
            raw = await admin.get(heartbeat_answer_key(org_id))
            return raw is not None and msgspec.json.decode(raw)["config_version"] == version

        await eventually(answered, what="the new configuration in the answer key", interval=0.2)

        async def enforced() -> bool:
            made = await inst.post("/api/v1/sessions", json={"title": "two"})
            return made.status_code == 403 and made.json()["code"] == "quota_exceeded"

        await eventually(enforced, what="the new limit enforced by the instance", interval=0.2)
    assert await posted(admin, org_id) == posts

    # With no reader left (its task stopped, its lock given back) the instance finds no
    # answer and posts again; the control plane no longer says ``via: redis``, so it stays on
    # HTTP and the org stays running.
    for task in asyncio.all_tasks():
        if task.get_name() == "orgplane-heartbeat-reader":
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert done, "the heartbeat reader did not stop when cancelled"
    await admin.delete(heartbeat_answer_key(org_id))

    async def posting_again() -> bool:
        return await posted(admin, org_id) >= posts + 3

    await eventually(posting_again, what="POSTs once no control plane reads Redis", interval=0.2)
    assert await admin.get(heartbeat_answer_key(org_id)) is None
    state = await http.get("/api/v1/orgs/rbeat/instance", headers=headers)
    assert state.json()["phase"] == "running"


async def test_an_org_cannot_write_another_orgs_heartbeat(live: Any) -> None:
    http, app, _ = live
    headers = await admin_headers(app, http)
    ids = []
    for slug in ("hba", "hbb"):
        made = await http.post("/api/v1/orgs", headers=headers, json={"name": slug, "slug": slug})
        ids.append(made.json()["id"])
    for slug in ("hba", "hbb"):
        await wait_phase(http, headers, slug, "running")
    async with app.state.runtime.sessions() as db:
        a = await db.get(Instance, ids[0])
        assert a is not None
        url = app.state.runtime.box.decrypt(a.redis_url_enc).decode()
    as_a = aioredis.from_url(url)
    try:
        await as_a.set(heartbeat_key(ids[0]), b"{}")  # its own key: allowed
        for write in (
            as_a.set(heartbeat_key(ids[1]), b"{}"),
            as_a.set(heartbeat_answer_key(ids[1]), b"{}"),
            as_a.get(heartbeat_answer_key(ids[1])),
        ):
            with pytest.raises(NoPermissionError):
                await write
    finally:
        await as_a.aclose()
