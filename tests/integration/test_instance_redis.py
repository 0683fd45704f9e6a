"""An org instance end to end on the real Redis with its own ACL user: rate limits in its
namespace, live events over Redis pub/sub on its channels, readiness that notices Redis going."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from litestar.testing import TestClient
from redis import Redis

from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user
from org_instance.app import create_app
from org_instance.heartbeat import HeartbeatSender
from tests.instance.helpers import FakeControlPlane, Signer, bearer, instance_config
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def _acl_user(org_id: str, *, delete: bool = False) -> str:
    from redis.asyncio import Redis as AsyncRedis

    admin = AsyncRedis.from_url(REDIS_URL)
    try:
        if delete:
            await delete_org_redis_user(admin, org_id=org_id)
            return ""
        return await ensure_org_redis_user(admin, org_id=org_id)
    finally:
        await admin.aclose()


def test_an_instance_runs_on_its_acl_user_inside_its_namespace(tmp_path: Path) -> None:
    need("Redis", redis_available())
    org_id = uuid.uuid4().hex
    admin = Redis.from_url(REDIS_URL)
    url = asyncio.run(_acl_user(org_id))
    signer = Signer()
    cp = FakeControlPlane(signers=[signer])
    config = instance_config(
        tmp_path, org_id=org_id, redis_url=url, limits={"requests_per_minute": 6}
    )
    watcher = admin.pubsub()
    try:
        with TestClient(
            create_app(config, http=cp.client()), base_url="http://acme.orgplane.test"
        ) as client:
            assert client.get("/readyz").json()["redis_ok"] is True
            who = bearer(signer.token(org_id, sub="alice"))
            sid = client.post("/api/v1/sessions", headers=who, json={}).json()["id"]
            channel = f"org:{org_id}:session:{sid}"
            watcher.subscribe(channel)
            url_ws = f"/api/v1/sessions/{sid}/events?access_token={signer.token(org_id)}"
            with client.websocket_connect(url_ws) as socket:
                # The stream's Redis SUBSCRIBE has landed: the channel has the watcher and it.
                wait_until(
                    lambda: dict(admin.pubsub_numsub(channel)).get(channel.encode(), 0) >= 2,
                    what=f"the instance subscribed to {channel}",
                )
                sent = client.post(
                    f"/api/v1/sessions/{sid}/messages", headers=who, json={"body": "over redis"}
                )
                assert sent.status_code == 201, sent.text
                assert socket.receive_json(timeout=5)["body"] == "over redis"
            seen = wait_until(
                lambda: watcher.get_message(ignore_subscribe_messages=True, timeout=0.2),
                what=f"the message published on {channel}",
                interval=0,
            )
            assert b"over redis" in seen["data"]
            # alice: 2 writes before, 6 a minute in fixed one-minute windows. Twelve more
            # requests overrun the limit even when a window boundary falls among them (a slow
            # run crossed one and all five of the old check's requests passed).
            statuses = [client.get("/api/v1/me", headers=who).status_code for _ in range(12)]
            assert statuses[:4] == [200] * 4
            assert 429 in statuses
            ours = [k.decode() for k in admin.scan_iter(match=f"*{org_id}*", count=500)]
            assert ours
            assert all(k.startswith(f"org:{org_id}:") for k in ours)
            assert any(k.startswith(f"org:{org_id}:ratelimit:") for k in ours)
            asyncio.run(_acl_user(org_id, delete=True))  # the user goes: readiness notices
            wait_until(
                lambda: client.get("/readyz").status_code == 503,
                what="/readyz answering 503 once the Redis user is gone",
                interval=0.1,
            )
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["redis_ok"] is False
            sender = HeartbeatSender(runtime=client.app.state.instance, http=cp.client())
            with client.portal() as portal:
                beat = portal.call(sender.body)
            assert beat["status"] == "degraded"
            assert beat["redis_ok"] is False
            assert beat["db_ok"]
    finally:
        watcher.close()
        asyncio.run(_acl_user(org_id, delete=True))
        keys = list(admin.scan_iter(match=f"org:{org_id}:*", count=500))
        if keys:
            admin.delete(*keys)
        admin.close()
