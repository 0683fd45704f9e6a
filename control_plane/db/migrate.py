"""Alembic migrations driven from code: ``orgplane migrate`` and the start-up check.

Every control-plane start checks (production) or brings (embedded mode) the schema to the
newest migration. Alembic itself, its import and the parse of every migration script, cost
about 0.2 CPU-s a start, so a database already at the newest migration is recognised without
it: one ``SELECT`` of ``alembic_version`` compared with the newest migration file's name
(revisions are named after their files, numbered in order; a test holds the code to it).
Anything else, an empty, older or unknown database, goes through Alembic as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseNotMigrated(RuntimeError):
    """The database schema is behind the code; production refuses to start."""


def _config(connection: Any = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest migration the code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def newest_migration_file() -> str | None:
    """The name (stem) of the newest migration file, which is the head revision's id."""
    return max((p.stem for p in (_MIGRATIONS / "versions").glob("[0-9]*.py")), default=None)


async def _at_newest_migration(engine: AsyncEngine) -> bool:
    """Whether the database records exactly the newest migration file (no Alembic)."""
    newest = newest_migration_file()
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:  # no alembic_version table yet: an empty database
        return False
    return newest is not None and [tuple(row) for row in rows] == [(newest,)]


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    if revision == "head" and await _at_newest_migration(engine):
        return
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Raise :class:`DatabaseNotMigrated` unless the database is at the code's head."""
    if await _at_newest_migration(engine):
        return
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise DatabaseNotMigrated(
            f"The database is at migration {current or 'none'}, the code needs {head}. "
            "Run `orgplane migrate` first."
        )


async def autogenerate(engine: AsyncEngine, message: str) -> None:
    """Write a new migration from the difference between models and database (developers)."""
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(
            lambda sync: command.revision(_config(sync), message=message, autogenerate=True)
        )
