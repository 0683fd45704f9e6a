"""Fixtures of the unit tests beyond tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.settings import get_settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """ORGPLANE_* settings for a fresh SQLite database, for the operator commands
    (``orgplane keys``, ``orgplane oauth-clients``); the settings cache is reset."""
    monkeypatch.setenv("ORGPLANE_MODE", "production")
    monkeypatch.setenv("ORGPLANE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ORGPLANE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ORGPLANE_SECRET_KEY", "cli-test-secret")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
