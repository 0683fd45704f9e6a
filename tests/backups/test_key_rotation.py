"""Rotating the platform key rewraps the data keys and leaves the archives as they are
(``orgplane backups rewrap``); archives from before encryption are read only on request."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from control_plane.backups.keys import data_key
from control_plane.backups.store import store_for
from control_plane.cli.main import main
from control_plane.db.models import AuditEvent, BackupKey, Org
from control_plane.runtime import Runtime
from control_plane.settings import get_settings
from orgplane_wire.problems import ProblemError

OLD_SECRET = "cli-test-secret"
BACKUP_ID = "e" * 32
ARCHIVE = b"an org's archive " * 1000


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """ORGPLANE_* settings for a fresh SQLite database; the settings cache is reset."""
    monkeypatch.setenv("ORGPLANE_MODE", "production")
    monkeypatch.setenv("ORGPLANE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ORGPLANE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ORGPLANE_SECRET_KEY", OLD_SECRET)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


async def _pieces() -> AsyncIterator[bytes]:
    yield ARCHIVE


async def _backed_up_org() -> str:
    runtime = Runtime.build(get_settings())
    try:
        async with runtime.sessions() as db:
            org = Org(slug="kept", name="Kept")
            db.add(org)
            await db.commit()
            org_id = org.id
        key = await data_key(runtime, org_id, create=True)
        assert key is not None
        await store_for(runtime.settings).save(
            org_id=org_id, backup_id=BACKUP_ID, chunks=_pieces(), max_bytes=10**6, data_key=key
        )
        return org_id
    finally:
        await runtime.close()


async def _read(org_id: str) -> tuple[str | None, str]:
    """The stored archive's SHA-256 read with the current settings, and its key's wrapping."""
    runtime = Runtime.build(get_settings())
    try:
        key = await data_key(runtime, org_id, create=False)
        digest = store_for(runtime.settings).sha256(
            org_id=org_id, backup_id=BACKUP_ID, data_key=key
        )
        async with runtime.sessions() as db:
            row = await db.get(BackupKey, org_id)
        assert row is not None
        return digest, row.wrapped_key
    finally:
        await runtime.close()


async def _audited(action: str) -> int:
    runtime = Runtime.build(get_settings())
    try:
        async with runtime.sessions() as db:
            return len((await db.exec(select(AuditEvent).where(AuditEvent.action == action))).all())
    finally:
        await runtime.close()


def _settings(env: pytest.MonkeyPatch, **values: str) -> None:
    for name in ("ORGPLANE_BACKUP_KEY", "ORGPLANE_BACKUP_PREVIOUS_KEYS"):
        env.delenv(name, raising=False)
    for name, value in values.items():
        env.setenv(name, value)
    get_settings.cache_clear()


def test_a_new_platform_key_rewraps_the_data_keys_not_the_archives(
    cli_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    org_id = asyncio.run(_backed_up_org())
    archive = tmp_path / "backups" / org_id / f"{BACKUP_ID}.tar.gz.enc"
    before = archive.read_bytes()
    expected = hashlib.sha256(ARCHIVE).hexdigest()
    digest, old_wrapping = asyncio.run(_read(org_id))
    assert digest == expected

    # A new key alone cannot unwrap what the deployment secret wrapped: refused, not guessed.
    _settings(cli_env, ORGPLANE_BACKUP_KEY="a new platform key")
    with pytest.raises(ProblemError) as refused:
        asyncio.run(_read(org_id))
    assert refused.value.code == "backup_key_unavailable"
    assert main(["backups", "rewrap"]) == 1
    assert "ORGPLANE_BACKUP_PREVIOUS_KEYS" in capsys.readouterr().err

    # With the old one listed as previous, reads work at once and rewrap moves every key over.
    _settings(
        cli_env, ORGPLANE_BACKUP_KEY="a new platform key", ORGPLANE_BACKUP_PREVIOUS_KEYS=OLD_SECRET
    )
    assert asyncio.run(_read(org_id))[0] == expected
    assert main(["backups", "rewrap"]) == 0
    assert "rewrapped 1 data keys" in capsys.readouterr().out
    assert main(["backups", "rewrap"]) == 0
    assert "rewrapped 0 data keys" in capsys.readouterr().out
    assert asyncio.run(_audited("backup.keys_rewrapped")) == 2

    _settings(cli_env, ORGPLANE_BACKUP_KEY="a new platform key")  # the old key can go now
    digest, new_wrapping = asyncio.run(_read(org_id))
    assert digest == expected
    assert new_wrapping != old_wrapping
    assert archive.read_bytes() == before  # not re-encrypted


def test_plaintext_archives_from_before_encryption_need_the_flag(
    cli_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    org_id = "f" * 32
    legacy = tmp_path / "backups" / org_id / f"{BACKUP_ID}.tar.gz"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(ARCHIVE)
    assert (
        store_for(get_settings()).sha256(org_id=org_id, backup_id=BACKUP_ID, data_key=None) is None
    )
    _settings(cli_env, ORGPLANE_BACKUP_READ_PLAINTEXT="true")
    store = store_for(get_settings())
    digest = store.sha256(org_id=org_id, backup_id=BACKUP_ID, data_key=None)
    assert digest == hashlib.sha256(ARCHIVE).hexdigest()
    store.delete(org_id=org_id, backup_id=BACKUP_ID)
    assert not legacy.exists()
