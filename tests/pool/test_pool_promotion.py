"""A warming spare becomes ready when it answers, not when its backend says it runs; the
pool's upkeep holds no pooled connection while spares start.

Docker org containers have no health check by default (``docker_health_interval``), so the
engine reports a spare ``running`` before its server listens; a spare promoted then would be
claimed and refuse its assignment. The pool's upkeep runs here on the app's database (SQLite and
PostgreSQL) against a real local backend object, with the backend's list saying ``running``
throughout, and a real listener on the spare's endpoint that starts answering only later.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import select

from control_plane.capacity.pool import WarmPool
from control_plane.db.engine import make_sessionmaker
from control_plane.db.models import Spare, utcnow
from control_plane.settings import Settings
from provisioners.base import InstanceStatus, ProvisionerOptions
from provisioners.errors import ProvisionerError
from provisioners.local import LocalProvisioner
from tests.support.api import runtime_of
from tests.support.db import pooled_connection_holders


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
    # The app's runtime, with sessions on this test's loop (the client runs the app in another).
    ctx = dataclasses.replace(runtime, sessions=sessions, replica_id="r1")
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


async def test_no_pooled_connection_is_held_while_spares_start(
    pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a spare takes as long as the backend does; the upkeep's own connection goes
    back first, so the spares being started (each with a connection of its own before and
    after) cannot wait on it."""
    warm_pool, sessions = pool
    held_while_starting: list[int] = []

    async def refusing_apply(*, spec: Any) -> InstanceStatus:
        held_while_starting.append(len(holders))
        raise ProvisionerError("injected: the backend refuses to start it")

    monkeypatch.setattr(warm_pool.provisioner, "apply", refusing_apply)
    with pooled_connection_holders(sessions.kw["bind"]) as holders:
        await warm_pool.maintain(observed={}, listed_at=utcnow())
    assert held_while_starting == [0]  # the pool's size, 1, all missing
    async with sessions() as db:
        states = [s.state for s in (await db.exec(select(Spare))).all()]
    assert states == ["failed"]
