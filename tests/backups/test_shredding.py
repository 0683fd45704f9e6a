"""Crypto-shredding, retention after deletion and the legal hold (control_plane/backups/
keys.py, retention.py, key_routes.py), on SQLite and PostgreSQL.

The archives here are written through the real store with the org's real data key; no
instance is needed, since what is tested is what happens to them at rest.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.backups.crypto import ArchiveUnreadable, open_sealed
from control_plane.backups.keys import KeyShredded, data_key, platform_keys
from control_plane.backups.service import store_of
from control_plane.db.models import AuditEvent, Backup, BackupKey, Membership, Org, utcnow
from control_plane.reconciler.housekeeping import run_housekeeping
from control_plane.reconciler.reconcile import Context
from control_plane.runtime import Runtime
from tests.support.api import add_user, assert_problem, direct_db, login, runtime_of
from tests.support.tokens import make_org

DAY = 86400


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    """Unlike the end-to-end backup tests, these run on both databases."""
    return str(request.param)


@pytest.fixture
def settings(make_settings: Any, tmp_path: Path) -> Any:
    return make_settings(
        ORGPLANE_BACKUP_DIR=str(tmp_path / "backups"),
        ORGPLANE_BACKUP_RETENTION_AFTER_DELETE=str(DAY),
    )


@pytest.fixture
async def runtime(client: AsyncTestClient[Any]) -> AsyncIterator[Runtime]:
    """A runtime on the app's database, for the test's own event loop."""
    built = Runtime.build(runtime_of(client).settings)
    try:
        yield built
    finally:
        await built.close()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def backed_up_org(
    client: AsyncTestClient[Any], runtime: Runtime, slug: str, *, deleted_days_ago: float | None
) -> tuple[str, Path]:
    """An org with one encrypted backup in the store; returns its id and the archive's path."""
    org_id = await make_org(client, slug, phase="running")
    key = await data_key(runtime, org_id, create=True)
    assert key is not None
    async with direct_db(client) as db:
        row = Backup(org_id=org_id, kind="manual", status="ready")
        db.add(row)
        await db.commit()
        store = store_of(runtime)
        size, sha = await store.save(
            org_id=org_id,
            backup_id=row.id,
            chunks=_chunks(b"secret tenant data " + os.urandom(64)),
            max_bytes=10**6,
            data_key=key,
        )
        row.size_bytes, row.sha256 = size, sha
        if deleted_days_ago is not None:
            org = await db.get(Org, org_id)
            assert org is not None
            org.desired_state, org.phase = "deleted", "deleted"
            org.deleted_at = utcnow() - timedelta(days=deleted_days_ago)
            db.add(org)
        db.add(row)
        await db.commit()
        return org_id, store.path(org_id=org_id, backup_id=row.id)


async def housekeeping(client: AsyncTestClient[Any], runtime: Runtime) -> None:
    failed = await run_housekeeping(Context(runtime, runtime_of(client).provisioner))
    assert "deleted orgs' backups past retention" not in failed, failed


async def assert_shredded(runtime: Runtime, org_id: str, copy: Path) -> None:
    """No key the deployment holds reads ``copy`` any more."""
    with pytest.raises(KeyShredded):
        await data_key(runtime, org_id, create=False)
    async with runtime.sessions() as db:
        row = await db.get(BackupKey, org_id)
    assert row is not None
    assert row.wrapped_key == ""
    assert row.shredded_at is not None
    with pytest.raises(ArchiveUnreadable):
        platform_keys(runtime.settings).unwrap(row.wrapped_key, org_id=org_id)
    # Nor does a fresh key made for the org (the shredded one cannot be replaced).
    with pytest.raises(KeyShredded):
        await data_key(runtime, org_id, create=True)
    with copy.open("rb") as raw, pytest.raises(ArchiveUnreadable):
        open_sealed(raw, os.urandom(32), org_id=org_id, backup_id=copy.name[:32]).read()


async def _audit(client: AsyncTestClient[Any], org_id: str) -> list[AuditEvent]:
    async with direct_db(client) as db:
        query = select(AuditEvent).where(col(AuditEvent.org_id) == org_id)
        return list((await db.exec(query.order_by(col(AuditEvent.id)))).all())


async def test_retention_shreds_a_deleted_orgs_backups_and_every_copy(
    client: AsyncTestClient[Any], runtime: Runtime, tmp_path: Path
) -> None:
    gone, archive = await backed_up_org(client, runtime, "gone", deleted_days_ago=2)
    recent, recent_archive = await backed_up_org(client, runtime, "recent", deleted_days_ago=0.5)
    alive, alive_archive = await backed_up_org(client, runtime, "alive", deleted_days_ago=None)
    copy = tmp_path / archive.name
    shutil.copyfile(archive, copy)  # e.g. a volume snapshot taken before the shred
    with copy.open("rb") as raw:  # readable before
        key = await data_key(runtime, gone, create=False)
        assert key is not None
        plain = open_sealed(raw, key, org_id=gone, backup_id=archive.name[:32]).read()
        assert plain.startswith(b"secret tenant data ")
    assert b"secret tenant data" not in archive.read_bytes()
    alive_key = await data_key(runtime, alive, create=False)
    assert alive_key is not None
    with copy.open("rb") as raw, pytest.raises(ArchiveUnreadable):  # another org's key
        open_sealed(raw, alive_key, org_id=gone, backup_id=archive.name[:32]).read()

    await housekeeping(client, runtime)

    assert not archive.exists()
    assert not archive.parent.exists()
    async with direct_db(client) as db:
        left = {b.org_id for b in (await db.exec(select(Backup))).all()}
    assert left == {recent, alive}
    assert recent_archive.exists()
    assert alive_archive.exists()
    await assert_shredded(runtime, gone, copy)
    # The copy itself is intact: only the key is gone (this test kept the one it read before
    # the shred; nothing in the deployment holds it any more).
    with copy.open("rb") as raw:
        assert open_sealed(raw, key, org_id=gone, backup_id=copy.name[:32]).read() == plain
    events = [e for e in await _audit(client, gone) if e.action == "backup.key_shredded"]
    assert [(e.actor_email, e.detail["reason"], e.detail["backups"]) for e in events] == [
        ("system", "retention", 1)
    ]
    await housekeeping(client, runtime)  # nothing left to do: no second event
    assert len([e for e in await _audit(client, gone) if e.action == "backup.key_shredded"]) == 1


async def test_legal_hold_keeps_backups_and_blocks_the_shred(
    client: AsyncTestClient[Any], runtime: Runtime, admin: dict[str, str]
) -> None:
    held, archive = await backed_up_org(client, runtime, "held", deleted_days_ago=10)
    owner = await add_user(client, "owner@example.com")
    async with direct_db(client) as db:
        db.add(Membership(user_id=owner, org_id=held, role="owner"))
        await db.commit()
    url = f"/api/v1/orgs/{held}/backup-key"
    as_owner = await login(client, "owner@example.com")
    body = {"hold": True, "reason": "litigation 2026-17"}
    assert_problem(
        await client.put(url + "/legal-hold", headers=as_owner, json=body),
        403,
        "platform_admin_required",
    )
    assert_problem(
        await client.put(url + "/legal-hold", headers=admin, json={"hold": True}),
        422,
        "reason_required",
    )
    assert_problem(await client.put(url + "/legal-hold", headers=admin, json={"hold": "yes"}), 400)
    set_hold = await client.put(url + "/legal-hold", headers=admin, json=body)
    assert set_hold.status_code == 200, set_hold.text
    assert set_hold.json()["legal_hold"] is True
    assert set_hold.json()["retention_ends_at"] is None

    await housekeeping(client, runtime)
    assert archive.exists()
    shred = await client.post(url + "/shred", headers=admin, json={"confirm": held})
    assert_problem(shred, 409, "legal_hold")
    assert archive.exists()
    assert await data_key(runtime, held, create=False) is not None

    released = await client.put(url + "/legal-hold", headers=admin, json={"hold": False})
    assert released.status_code == 200, released.text
    assert released.json()["retention_ends_at"] is not None
    await housekeeping(client, runtime)
    assert not archive.exists()
    state = await client.get(url, headers=admin)
    assert state.json()["state"] == "shredded"
    actions = [e.action for e in await _audit(client, held)]
    assert actions == [
        "backup.legal_hold_set",
        "backup.legal_hold_released",
        "backup.key_shredded",
    ]


async def test_a_platform_admin_shreds_a_deleted_orgs_backups_now(
    client: AsyncTestClient[Any], runtime: Runtime, admin: dict[str, str], tmp_path: Path
) -> None:
    alive, _ = await backed_up_org(client, runtime, "alive", deleted_days_ago=None)
    fresh, archive = await backed_up_org(client, runtime, "fresh", deleted_days_ago=0)
    copy = tmp_path / archive.name
    shutil.copyfile(archive, copy)
    refused = await client.post(
        f"/api/v1/orgs/{alive}/backup-key/shred", headers=admin, json={"confirm": alive}
    )
    assert_problem(refused, 409, "org_not_deleted")
    url = f"/api/v1/orgs/{fresh}/backup-key/shred"
    assert_problem(await client.post(url, headers=admin, json={"confirm": "fresh"}), 422)
    assert_problem(
        await client.post(f"/api/v1/orgs/{'f' * 32}/backup-key/shred", headers=admin, json={}),
        404,
        "org_not_found",
    )
    assert archive.exists()  # nothing changed by the refusals
    assert await data_key(runtime, fresh, create=False) is not None

    done = await client.post(url, headers=admin, json={"confirm": fresh})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "shredded"
    assert not archive.exists()
    await assert_shredded(runtime, fresh, copy)
    (event,) = [e for e in await _audit(client, fresh) if e.action == "backup.key_shredded"]
    assert event.actor_email == "root@example.com"
    assert event.detail["reason"] == "admin"
    assert "wrapped" not in str(event.detail)
