"""Databases for tests: a fresh SQLite file, or a fresh PostgreSQL database cloned from a
migrated template (CREATE DATABASE ... TEMPLATE is much faster than migrating each time)."""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane.db.engine import make_engine
from control_plane.db.migrate import head_revision, upgrade
from tests.support.services import POSTGRES_DSN

_VERSIONS = Path(__file__).resolve().parents[2] / "control_plane" / "db" / "migrations" / "versions"


def _with_db(dsn: str, name: str, driver: str = "postgresql") -> str:
    parts = urlsplit(dsn)
    return urlunsplit((driver, parts.netloc, f"/{name}", "", ""))


def template_name() -> str:
    """The migrated template database of the code's migrations (named by their digest, so a
    changed migration gets a new template and concurrent test sessions share an unchanged one)."""
    digest = hashlib.sha256()
    for path in sorted(_VERSIONS.glob("*.py")):
        digest.update(path.read_bytes())
    return f"orgplane_tpl_{(head_revision() or 'none').lower()}_{digest.hexdigest()[:10]}"


async def create_template() -> str:
    """Create the migrated template database unless it exists; once per test session.

    An advisory lock serialises concurrent sessions; the template is migrated under a temporary
    name and renamed, so no session ever clones a half-migrated template.
    """
    name = template_name()
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute("SELECT pg_advisory_lock(727001)")
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
            return name
        building = f"{name}_building"
        await conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{building}"')
        engine = make_engine(_with_db(POSTGRES_DSN, building, "postgresql+asyncpg"))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        await conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        return name
    finally:
        await conn.execute("SELECT pg_advisory_unlock(727001)")
        await conn.close()


async def create_postgres_database() -> tuple[str, str]:
    """A new migrated database: (its name, its SQLAlchemy URL)."""
    template = template_name()
    name = f"orgplane_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name, _with_db(POSTGRES_DSN, name, "postgresql+asyncpg")


async def drop_postgres_database(name: str) -> None:
    """Drop a database created by :func:`create_postgres_database`."""
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class LaterDrops:
    """Test databases dropped by a background thread, several at a time.

    PostgreSQL 15's ``DROP DATABASE`` forces a checkpoint and waits for it
    (``pg_stat_bgwriter.checkpoints_req`` grows by one per drop): 1-3 s on the CI machine, during
    which the test's worker did nothing else. Handed to this thread, the drop no longer holds the
    worker, and the drops that wait here together share their checkpoints. ``close`` drops what
    is left and raises if any drop failed.
    """

    AT_ONCE = 8

    def __init__(self) -> None:
        self._names: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name="later-drops", daemon=True)
        self._thread.start()

    def drop(self, name: str) -> None:
        self._names.put(name)

    def close(self, timeout: float = 300) -> None:
        self._names.put(None)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"test databases still being dropped after {timeout} s"
        assert not self._failures, f"test databases not dropped: {self._failures}"

    def _run(self) -> None:
        done = False
        while not done:
            batch = [self._names.get()]
            while len(batch) < self.AT_ONCE:
                try:
                    batch.append(self._names.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            names = [name for name in batch if name is not None]
            results = asyncio.run(_drop_all(names))
            self._failures += [f"{n}: {r!r}" for n, r in zip(names, results, strict=True) if r]


async def _drop_all(names: list[str]) -> list[BaseException | None]:
    return await asyncio.gather(*(drop_postgres_database(n) for n in names), return_exceptions=True)


@contextmanager
def pooled_connection_holders(engine: AsyncEngine) -> Iterator[dict[int, asyncio.Task[Any] | None]]:
    """While inside: the connections checked out of ``engine``'s pool, each with the task that
    took it (pool events, so any session or ``connect()`` on the engine counts)."""
    holders: dict[int, asyncio.Task[Any] | None] = {}

    def checked_out(_dbapi: Any, record: Any, _proxy: Any) -> None:
        holders[id(record)] = asyncio.current_task()

    def checked_in(_dbapi: Any, record: Any) -> None:
        holders.pop(id(record), None)

    pool_events = (("checkout", checked_out), ("checkin", checked_in))
    for name, listener in pool_events:
        event.listen(engine.sync_engine, name, listener)
    try:
        yield holders
    finally:
        for name, listener in pool_events:
            event.remove(engine.sync_engine, name, listener)
