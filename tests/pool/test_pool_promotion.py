"""A warming spare becomes ready when it answers, not when its backend says it runs.

Docker org containers have no health check by default (``docker_health_interval``), so the
engine reports a spare ``running`` before its server listens; a spare promoted then would be
claimed and refuse its assignment. The pool's upkeep runs here on the app's database (SQLite and
PostgreSQL) against a real local backend object, with the backend's list saying ``running``
throughout, and a real listener on the spare's endpoint that starts answering only later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from control_plane.db.engine import make_sessionmaker
from control_plane.db.models import Spare, utcnow
from control_plane.reconciler.pool import WarmPool
from control_plane.settings import Settings
from provisioners.base import InstanceStatus, ProvisionerOptions
from provisioners.local import LocalProvisioner
from tests.support.api import runtime_of


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(ORGPLANE_WARM_POOL_SIZE="1")  # the spare is within the pool's size


async def _answer_health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that listens: ``/healthz`` is 200, as a spare's once its app is up."""
    request = await reader.readuntil(b"\r\n\r\n")
    ok = request.startswith(b"GET /healthz ")
    writer.write(b"HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n" % (b"200 OK" if ok else b"404 No"))
    await writer.drain()
    writer.close()


@pytest.fixture
async def pool(client: AsyncTestClient[Any], tmp_path: Any) -> AsyncIterator[Any]:
    runtime = runtime_of(client)
    engine = create_async_engine(
        runtime.engine.url.render_as_string(hide_password=False), poolclass=NullPool
    )
    sessions = make_sessionmaker(engine)
    backend = LocalProvisioner(options=ProvisionerOptions(data_root=tmp_path))
    ctx: Any = SimpleNamespace(settings=runtime.settings, sessions=sessions, replica_id="r1")
    try:
        yield WarmPool(ctx, backend), sessions
    finally:
        await engine.dispose()


async def test_a_spare_is_ready_once_it_answers_whatever_the_backend_says(
    pool: Any, unused_tcp_port: int
) -> None:
    warm_pool, sessions = pool
    endpoint = f"http://127.0.0.1:{unused_tcp_port}"
    async with sessions() as db:
        spare = Spare(provisioner=warm_pool.name, endpoint=endpoint)
        db.add(spare)
        await db.commit()
    running = {spare.id: InstanceStatus(org_id=spare.id, state="running", endpoint=endpoint)}

    async def state_after_upkeep() -> str:
        await warm_pool.maintain(observed=running, listed_at=utcnow())
        async with sessions() as db:
            row = await db.get(Spare, spare.id)
            assert row is not None
            return row.state

    # Nothing listens yet: the backend's "running" does not make it ready.
    assert await state_after_upkeep() == "warming"
    assert await state_after_upkeep() == "warming"
    server = await asyncio.start_server(_answer_health, "127.0.0.1", unused_tcp_port)
    try:
        assert await state_after_upkeep() == "ready"
    finally:
        server.close()
        await server.wait_closed()
