"""Pooled PostgreSQL connections the server closed are replaced at checkout, with no ping.

The engine has no ``pool_pre_ping`` (three round trips on every checkout); it checks at checkout
whether asyncpg has seen the socket close (``control_plane/db/engine.py``). These tests close a
pooled connection from the server's side, as a restart or an idle timeout does, and expect the
next request to get a fresh connection instead of an error.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane.db.engine import drop_if_closed, make_engine
from tests.support.db import _with_db
from tests.support.services import POSTGRES_DSN, need, postgres_available


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(pid: int) -> None:
    """End the server side of ``pid`` and wait until the server no longer lists it."""
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        deadline = time.monotonic() + 10
        while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            assert time.monotonic() < deadline, "the backend did not end"
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    await asyncio.sleep(0.05)  # the event loop reads the closed socket


async def test_a_connection_the_server_closed_is_replaced_at_checkout() -> None:
    need("PostgreSQL", postgres_available())
    engine = make_engine(_with_db(POSTGRES_DSN, "postgres", "postgresql+asyncpg"))
    # The exchange's sessions: the same pool, with AUTOCOMMIT set at checkout.
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        for user in (engine, autocommit):
            first = await _backend_pid(user)
            assert await _backend_pid(user) == first  # pooled: the same connection again
            await _terminate(first)
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
        pid = await _backend_pid(engine)
        await _terminate(pid)
        with pytest.raises(DBAPIError, match="connection is closed"):
            await _backend_pid(engine)
    finally:
        await engine.dispose()
