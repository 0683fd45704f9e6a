"""The control plane's PostgreSQL pool (``control_plane/db/engine.py``).

* Pooled connections the server closed are replaced at checkout, with no ping. The engine has
  no ``pool_pre_ping`` (three round trips on every checkout); it checks at checkout whether
  asyncpg has seen the socket close. These tests close a pooled connection from the server's
  side, as a restart or an idle timeout does, and expect the next request to get a fresh
  connection instead of an error.
* A burst past the pool waits for the pool's connections: no connection is opened beyond it
  (an overflow connection is closed again when it comes back, so bursts thrashed), and a
  request that waits longer than ``ORGPLANE_DATABASE_POOL_TIMEOUT`` is answered 503.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane.db.engine import drop_if_closed, make_engine
from control_plane.settings import Settings
from tests.interop.servers import app_in_this_loop, runtime_of_app
from tests.support.api import assert_problem
from tests.support.db import _with_db
from tests.support.services import POSTGRES_DSN, need, postgres_available
from tests.support.wait import eventually

ON_POSTGRES = pytest.mark.parametrize(
    "db_backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _pooled(engine: AsyncEngine) -> tuple[int, Any]:
    """The server pid of the connection the pool hands out, and its asyncpg connection."""
    async with engine.connect() as conn:
        pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        return pid, (await conn.get_raw_connection()).driver_connection


async def _terminate(pid: int, connection: Any) -> None:
    """End the server side of ``pid``, wait until the server no longer lists it, and until
    the event loop has read the closed socket of ``connection`` (its asyncpg client side)."""
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

        async def ended() -> bool:
            query = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
            return not await admin.fetchval(query, pid)

        await eventually(ended, what=f"backend {pid} ended", interval=0.02)
    finally:
        await admin.close()
    await eventually(connection.is_closed, what=f"asyncpg seeing backend {pid} close")


async def test_a_connection_the_server_closed_is_replaced_at_checkout() -> None:
    need("PostgreSQL", postgres_available())
    engine = make_engine(_with_db(POSTGRES_DSN, "postgres", "postgresql+asyncpg"))
    # The exchange's sessions: the same pool, with AUTOCOMMIT set at checkout.
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        for user in (engine, autocommit):
            first, connection = await _pooled(user)
            assert await _backend_pid(user) == first  # pooled: the same connection again
            await _terminate(first, connection)
            replaced = await _backend_pid(user)  # no error: a new connection
            assert replaced != first
            assert await _backend_pid(user) == replaced
    finally:
        await engine.dispose()


async def test_without_the_checkout_check_the_closed_connection_fails() -> None:
    """The control: the same pool without the check hands out the dead connection."""
    need("PostgreSQL", postgres_available())
    engine = make_engine(_with_db(POSTGRES_DSN, "postgres", "postgresql+asyncpg"))
    try:
        event.remove(engine.sync_engine, "checkout", drop_if_closed)
        pid, connection = await _pooled(engine)
        await _terminate(pid, connection)
        with pytest.raises(DBAPIError, match="connection is closed"):
            await _backend_pid(engine)
    finally:
        await engine.dispose()


async def test_a_burst_past_the_pool_waits_for_the_pools_connections() -> None:
    need("PostgreSQL", postgres_available())
    engine = make_engine(_with_db(POSTGRES_DSN, "postgres", "postgresql+asyncpg"), pool_size=3)
    connects: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda conn, _record: connects.append(conn))
    try:

        async def query() -> int:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(0.05)"))  # holds it: the burst queues
                return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

        for _ in range(2):  # a second burst finds the same connections
            pids = await asyncio.wait_for(asyncio.gather(*(query() for _ in range(12))), 30)
            assert len(set(pids)) == 3
        assert len(connects) == 3
        assert engine.sync_engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@ON_POSTGRES
async def test_a_request_that_finds_no_free_connection_is_answered_503(make_settings: Any) -> None:
    settings: Settings = make_settings(
        ORGPLANE_DATABASE_POOL_SIZE="1", ORGPLANE_DATABASE_POOL_TIMEOUT="0.3"
    )
    async with app_in_this_loop(settings) as (app, client):
        assert (await client.get("/readyz")).status_code == 200
        async with runtime_of_app(app).engine.connect() as held:
            await held.execute(text("SELECT 1"))  # the pool's one connection, in use
            answer = await client.get("/readyz")
            assert_problem(answer, 503, "database_unavailable")
            assert answer.headers["retry-after"]
        assert (await client.get("/readyz")).status_code == 200  # served again once it is back
