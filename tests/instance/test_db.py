"""The instance database: WAL, migrations applied once and in order, reads see committed writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from org_instance.db import MIGRATIONS, Database, migrate


async def test_open_applies_migrations_once_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "instance.db"
    for _ in range(2):  # the second open finds everything applied
        db = Database(path)
        await db.open()
        await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "messages", "settings", "runners", "files"} <= tables


async def test_reads_see_committed_writes_and_a_failed_write_leaves_nothing(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "instance.db")
    await db.open()
    try:

        def insert(conn: sqlite3.Connection, title: str) -> None:
            conn.execute("INSERT INTO sessions VALUES (?, ?, 'u', 't', 't')", (title, title))
            if title == "broken":
                raise ValueError("refused after the insert")

        def titles(conn: sqlite3.Connection) -> list[str]:
            return [r["title"] for r in conn.execute("SELECT title FROM sessions ORDER BY id")]

        await db.run(insert, "kept")
        with pytest.raises(ValueError, match="refused"):
            await db.run(insert, "broken")
        assert await db.read(titles) == ["kept"]
        assert await db.ping() is True
        with pytest.raises(sqlite3.OperationalError):  # the read connection is read-only
            await db.read(insert, "sneaky")
    finally:
        await db.close()
    assert await db.ping() is False


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "future.db", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        migrate(conn)
    conn.close()
