"""Revocation latency: from the control plane publishing a revocation to an instance refusing
the token (target: within 2 s).

One org with its own Redis ACL user on the Redis at ``ORGPLANE_TEST_REDIS`` (default
``redis://127.0.0.1:6379/0``). The control plane's writer
(``control_plane.tokens.org_revocation.publish_revocation``, admin connection) revokes one user
at a time; the instance's follower (``org_instance.revocations.Revocations``, on the org's own
ACL user, the code an instance runs) is polled every millisecond until it refuses that user's
token. Both run in this process, on one event loop, so the figure is Redis's pub/sub delivery
plus the follower's handling, not HTTP (the instance's refusal is an in-memory check of every
request). ``BENCH_REVOCATION_N`` sets the number of revocations (default 300).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from types import SimpleNamespace
from typing import Any

from benchmarks import Result

N = int(os.environ.get("BENCH_REVOCATION_N", "300"))
REDIS_URL = os.environ.get("ORGPLANE_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def _measure() -> list[float]:
    from redis.asyncio import Redis

    from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user
    from control_plane.tokens.org_revocation import publish_revocation
    from org_instance.revocations import Revocations
    from orgplane_wire.contract import revocations_key

    admin = Redis.from_url(REDIS_URL)
    org_id = uuid.uuid4().hex
    url = await ensure_org_redis_user(admin, org_id=org_id)
    org_user = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    follower = Revocations(org_id=org_id, redis=org_user)
    task = asyncio.create_task(follower.run())
    runtime: Any = SimpleNamespace(
        redis_admin=admin, settings=SimpleNamespace(tokens=SimpleNamespace(org_token_ttl=300))
    )
    samples: list[float] = []
    try:
        while not follower.live:
            await asyncio.sleep(0.01)
        for n in range(N):
            claims = {"sub": f"u{n}", "iat": int(time.time()), "jti": f"j{n}"}
            start = time.perf_counter()
            await publish_revocation(runtime, org_ids=[org_id], field=f"sub:u{n}")
            while not follower.refuses(claims):
                await asyncio.sleep(0.001)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await org_user.aclose()
        await delete_org_redis_user(admin, org_id=org_id)
        await admin.delete(revocations_key(org_id))
        await admin.aclose()
    return samples


def run() -> list[Result]:
    """Publish-to-refusal latency over ``N`` revocations."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return [Result.skip("revocation publish-to-refusal", "no Redis on 127.0.0.1:6379")]
    samples = asyncio.run(_measure())
    return [
        Result.distribution(
            "revocation publish-to-refusal",
            samples,
            "ms",
            target="p99 < 2000 ms",
            check=lambda _p50, _p95, p99: p99 < 2000,
        )
    ]
