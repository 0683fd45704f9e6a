"""The instance's SQLite database (WAL): one writer thread, reads on the event loop.

Writes run on one connection owned by one worker thread, so they are serialised (SQLite allows
one writer at a time anyway) and a commit never blocks the event loop. Reads run on a second,
read-only connection directly on the event loop: in WAL mode a reader sees the last commit and
never waits for the writer, and an indexed lookup of one org's rows takes microseconds, less
than handing it to a thread and back (measured in ``benchmarks/bench_instance.py``).
Migrations are a list of SQL scripts; ``PRAGMA user_version`` records how many have run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Append only: an applied script is never edited; a change is a new script at the end.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX ix_sessions_created ON sessions (created_at, id);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX ix_messages_session ON messages (session_id, id);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        secret INTEGER NOT NULL DEFAULT 0,
        updated_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '[]',
        token_hash TEXT NOT NULL UNIQUE,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT,
        status TEXT NOT NULL DEFAULT 'registered',
        revoked_at TEXT
    );
    CREATE TABLE files (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        uploaded_by TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX ix_files_created ON files (created_at, id);
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the scripts not yet applied; returns the schema version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(f"database schema {version} is newer than this instance knows")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first; the BEGIN makes each script and its version atomic.
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)


class Database:
    """An open SQLite database and the one thread that uses it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="org-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (creating the directory), switch to WAL and apply migrations."""
        await self.run_raw(self._open)
        reader = sqlite3.connect(self.path, isolation_level=None)
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA query_only = ON")
        reader.execute("PRAGMA busy_timeout = 5000")
        self._reader = reader

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        migrate(conn)
        self._conn = conn

    async def run_raw(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the database thread inside one write transaction."""
        return await self.run_raw(self._transaction(fn, args, "BEGIN IMMEDIATE"))

    async def read(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the read connection inside one read transaction."""
        conn = self._reader
        if conn is None:
            raise RuntimeError("database is not open")
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    def _transaction(
        self, fn: Callable[..., T], args: tuple[Any, ...], begin: str
    ) -> Callable[[], T]:
        def call() -> T:
            conn = self._conn
            if conn is None:
                raise RuntimeError("database is not open")
            conn.execute(begin)
            try:
                result = fn(conn, *args)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return call

    async def ping(self) -> bool:
        """Whether the database answers a query."""
        try:
            return await self.run_raw(self._ping)
        except (sqlite3.Error, RuntimeError):
            return False

    def _ping(self) -> bool:
        return self._conn is not None and self._conn.execute("SELECT 1").fetchone()[0] == 1

    async def close(self) -> None:
        """Close the connections and stop the thread."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self.run_raw(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
