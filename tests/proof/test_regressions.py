"""Fast regression tests for the bugs the proof suites found (no services needed).

1. After a control-plane outage longer than ``unhealthy_restart_after``, the reconciler
   restarted every org instance on its first pass (test_control_plane_down.py).
2. A database or Redis that could not be reached gave 500 ``internal_error`` instead of a
   503 the client may retry (test_store_outages.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from control_plane.db.models import utcnow
from control_plane.error_handlers import EXCEPTION_HANDLERS
from control_plane.reconciler.reconcile import Context, _silent_for
from orgplane_wire.contract import longest_heartbeat_gap
from tests.instance.processes import free_port
from tests.support.api import assert_problem


def context(*, interval: float, started_ago: float) -> Context:
    settings = SimpleNamespace(provisioning=SimpleNamespace(heartbeat_interval=interval))
    ctx = Context(runtime=SimpleNamespace(settings=settings), provisioner=None)  # type: ignore[arg-type]
    ctx.watching_since = utcnow() - timedelta(seconds=started_ago)
    return ctx


def test_silence_before_the_replica_started_does_not_count() -> None:
    now = utcnow()
    last_beat = now - timedelta(minutes=10)  # the control plane was down for ten minutes
    just_back = context(interval=10, started_ago=5)
    assert _silent_for(just_back, last_beat, now) < 0
    # Restarts resume once a full heartbeat backoff has passed since the replica started.
    gap = longest_heartbeat_gap(10)
    later = context(interval=10, started_ago=gap + 61)
    assert 60 < _silent_for(later, last_beat, now) < 62


def test_a_replica_up_all_along_counts_the_whole_silence() -> None:
    now = utcnow()
    ctx = context(interval=10, started_ago=3600)
    assert round(_silent_for(ctx, now - timedelta(seconds=90), now)) == 90


def test_longest_gap_covers_the_backoff_cap_and_jitter() -> None:
    assert longest_heartbeat_gap(1) == pytest.approx(8 * 1.1)
    assert longest_heartbeat_gap(10) == pytest.approx(60 * 1.1)
    assert longest_heartbeat_gap(120) == pytest.approx(120 * 1.1)


def app_raising() -> Litestar:
    closed = free_port()  # nothing listens here

    @get("/database")
    async def database() -> None:
        engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    @get("/redis")
    async def redis() -> None:
        client = aioredis.from_url(f"redis://127.0.0.1:{closed}/0")
        try:
            await client.get("key")
        finally:
            await client.aclose()

    @get("/file", sync_to_thread=False)
    def file() -> None:
        Path("/nonexistent/orgplane/file").read_bytes()  # an OSError of no store

    return Litestar([database, redis, file], exception_handlers=EXCEPTION_HANDLERS)


async def test_unreachable_stores_are_503_problems_other_os_errors_500() -> None:
    async with AsyncTestClient(app_raising()) as client:
        answer: Any = await client.get("/database")
        assert_problem(answer, 503, "database_unavailable")
        assert answer.headers["retry-after"] == "5"
        assert_problem(await client.get("/redis"), 503, "redis_unavailable")
        assert_problem(await client.get("/file"), 500, "internal_error")
