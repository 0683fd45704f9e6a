"""A start on a database at the newest migration needs no Alembic (control_plane/db/migrate.py);
every other database still goes through it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from control_plane.db.engine import make_engine
from control_plane.db.migrate import (
    DatabaseNotMigrated,
    current_revision,
    ensure_migrated,
    head_revision,
    newest_migration_file,
)
from tests.instance.processes import fresh_python


def test_the_newest_migration_file_is_named_after_the_head_revision() -> None:
    # What the fast path relies on: a new migration's file and revision share their name,
    # numbered after the previous one (0012_x.py holds revision "0012_x").
    assert newest_migration_file() == head_revision()


def test_a_migrated_database_is_checked_and_upgraded_without_loading_alembic(
    sqlite_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "cp.db"
    db.write_bytes(sqlite_template.read_bytes())
    code = """
        import asyncio, sys
        from control_plane.db.engine import make_engine
        from control_plane.db.migrate import ensure_migrated, upgrade

        async def start() -> None:
            engine = make_engine(f"sqlite+aiosqlite:///{sys.argv[1]}")
            await ensure_migrated(engine)  # production's check
            await upgrade(engine)  # embedded mode's
            await engine.dispose()

        asyncio.run(start())
        assert "alembic" not in sys.modules
        """
    result = fresh_python(code, str(db))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("recorded", ["0010_mfa", "0099_of_a_newer_version", None])
async def test_an_older_newer_or_unversioned_database_still_goes_through_alembic(
    database_url: str, recorded: str | None
) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            if recorded is None:  # as an empty database: no version table
                await conn.execute(text("DROP TABLE alembic_version"))
            else:
                await conn.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": recorded}
                )
        with pytest.raises(DatabaseNotMigrated, match=recorded or "at migration none"):
            await ensure_migrated(engine)
        # The failed look-up left the pool's connections usable (PostgreSQL aborts a
        # transaction on an error until it is rolled back).
        assert await current_revision(engine) == recorded
    finally:
        await engine.dispose()
