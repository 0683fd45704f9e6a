"""Settings documentation and database migrations stay in step with the code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from control_plane.db.engine import make_engine
from control_plane.db.migrate import DatabaseNotMigrated, ensure_migrated, upgrade
from control_plane.runtime import ConfigurationError, resolve_secret
from control_plane.settings import Settings, render_docs

REPO = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_generated_from_the_settings() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert doc.strip() == render_docs().strip(), "run `make docs` to regenerate it"
    assert "ORGPLANE_DATABASE_URL" in doc


def test_migrations_match_the_models(tmp_path: Path) -> None:
    async def diff() -> list[object]:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        await upgrade(engine)
        async with engine.connect() as conn:
            result = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
            )
        await engine.dispose()
        return list(result)

    assert asyncio.run(diff()) == []


def test_production_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DatabaseNotMigrated, match="orgplane migrate"):
        asyncio.run(ensure_migrated(engine))


def test_production_requires_a_secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORGPLANE_MODE", "production")
    monkeypatch.setenv("ORGPLANE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ORGPLANE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="ORGPLANE_SECRET_KEY"):
        resolve_secret(Settings())


def test_embedded_mode_creates_a_private_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORGPLANE_MODE", "embedded")
    monkeypatch.setenv("ORGPLANE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ORGPLANE_SECRET_KEY", raising=False)
    first = resolve_secret(Settings())
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert resolve_secret(Settings()) == first
