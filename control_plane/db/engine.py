"""Database engine and sessions, and the migration check run at start-up.

A pooled PostgreSQL connection is checked at checkout without a round trip: a connection the
server closed (a restart, ``pg_terminate_backend``, an idle timeout) has had its socket closed
under it, which asyncpg's ``is_closed()`` reports once the event loop has seen it; the pool
then drops it and connects afresh (:func:`drop_if_closed`). SQLAlchemy's
``pool_pre_ping`` would find the same connections, but at the price of three round trips
(``BEGIN``, ``;``, ``ROLLBACK``) on every checkout, and a round trip is what a request through
the control plane mostly costs (``docs/performance.md``). A connection that dies mid-query is
invalidated by SQLAlchemy's disconnect handling, and that request answers 503
(``control_plane/store_errors.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def make_engine(
    url: str, *, echo: bool = False, pool_size: int = 10, pool_timeout: float = 10.0
) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and enforced foreign keys.

    PostgreSQL gets a pool of ``pool_size`` connections and no overflow: a request that finds
    them all in use waits up to ``pool_timeout`` seconds for one, in arrival order. Overflow
    connections thrashed: SQLAlchemy closes one as soon as it is returned to a full pool, so a
    burst past the pool opened connections (a connect, codec set-up and an empty statement
    cache each) only to close them, and the next burst opened them again. Measured in
    one-second rounds of 700 exchanges/s (``benchmarks/bench_exchange.py``'s functions): with 20
    overflow, 3 rounds of 8 ended with a p99 of 1.06 to 1.52 s (rounds that went bad opened 40
    to 76 connections each); with none, no round did (p99 5.4 to 33 ms).

    Connections closed by the server are replaced at checkout (asyncpg: without a round trip;
    another driver: by SQLAlchemy's pre-ping).
    """
    kwargs: dict[str, Any] = {"echo": echo}
    driver = make_url(url).get_driver_name()
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # Another driver has no free closed-socket check: it pays for the ping.
        kwargs.update(
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            pool_pre_ping=driver != "asyncpg",
        )
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _sqlite_pragmas(engine)
    elif driver == "asyncpg":
        event.listen(engine.sync_engine, "checkout", drop_if_closed)
    return engine


def drop_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pool ``checkout`` hook: refuse a connection the server closed.

    The pool discards a connection whose checkout raises :class:`DisconnectionError` and
    connects again (up to three times).
    """
    if dbapi_conn.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        # isolation_level=None would let pysqlite skip BEGIN; we issue BEGIN IMMEDIATE ourselves
        # for writes that must serialise (see ``write_transaction``).
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits on success and rolls back on error."""
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def private_sqlite_files(url: URL) -> None:
    """Make a SQLite database and its WAL and shared-memory files readable by this user only
    (0600): SQLite creates them with the process umask (0644 usually), and the database holds
    password hashes and encrypted keys. Nothing to do for other databases or ``:memory:``."""
    if not url.get_backend_name().startswith("sqlite") or not url.database:
        return
    path = Path(url.database)
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists():
            name.chmod(0o600)
