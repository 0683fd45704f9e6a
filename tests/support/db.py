"""Databases for tests: a fresh SQLite file, or a fresh PostgreSQL database cloned from a
migrated template (CREATE DATABASE ... TEMPLATE is much faster than migrating each time)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from control_plane.db.engine import make_engine
from control_plane.db.migrate import head_revision, upgrade
from tests.support.services import POSTGRES_DSN

def _with_db(dsn: str, name: str, driver: str = "postgresql") -> str:
    parts = urlsplit(dsn)
    return urlunsplit((driver, parts.netloc, f"/{name}", "", ""))


def template_name() -> str:
    """The migrated template database of the code's head revision."""
    return f"orgplane_tpl_{(head_revision() or 'none').lower()}"


async def create_template() -> str:
    """(Re)create the migrated template database; once per test session."""
    name = template_name()
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    engine = make_engine(_with_db(POSTGRES_DSN, name, "postgresql+asyncpg"))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return name


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
