"""Backup, download, restore, delete and the refusals, with real local org instances."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from control_plane.backups import service
from control_plane.backups.service import store_of
from control_plane.db.models import AuditEvent, Backup
from tests.backups.live import Live, new_org, read_data, write_data
from tests.support.api import assert_problem
from tests.support.db import pooled_connection_holders

BEFORE = (["before"], {"before.bin": b"first file " * 500})


async def test_backup_change_restore_brings_the_data_back(live: Live) -> None:
    org_id = await new_org(live, "alpha")
    await write_data(live, "alpha", title="before", file_body=b"first file " * 500)
    assert await read_data(live, "alpha") == BEFORE

    made = await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)
    assert made.status_code == 201, made.text
    backup = made.json()
    assert backup["status"] == "ready"
    assert backup["kind"] == "manual"
    assert backup["manifest"]["format"] == "orgplane-backup/1"
    assert backup["manifest"]["org_id"] == org_id
    assert backup["manifest"]["entries"] == 2  # the database and one file

    # The download is the stored archive, decrypted: its bytes hash to the header and the row.
    got = await live.http.get(
        f"/api/v1/orgs/alpha/backups/{backup['id']}/archive", headers=live.admin
    )
    assert got.status_code == 200
    digest = hashlib.sha256(got.content).hexdigest()
    assert digest == got.headers["x-orgplane-backup-sha256"] == backup["sha256"]
    assert len(got.content) == backup["size_bytes"]
    assert got.content.startswith(b"\x1f\x8b")  # gzip
    # At rest it is encrypted: neither the gzip stream nor a piece of it is in the file.
    stored = store_of(live.app.state.runtime).path(org_id=org_id, backup_id=backup["id"])
    on_disk = stored.read_bytes()
    assert not on_disk.startswith(b"\x1f\x8b")
    assert got.content[:64] not in on_disk
    assert got.content[-64:] not in on_disk

    await write_data(live, "alpha", title="after", file_body=b"second")
    changed = await read_data(live, "alpha")
    assert changed[0] == ["after", "before"]

    # Without the typed confirmation nothing happens.
    for confirm in ("", "ALPHA", "beta"):
        refused = await live.http.post(
            "/api/v1/orgs/alpha/restore",
            headers=live.admin,
            json={"backup_id": backup["id"], "confirm": confirm},
        )
        assert_problem(refused, 422, "confirmation_required")
    assert await read_data(live, "alpha") == changed

    restored = await live.http.post(
        "/api/v1/orgs/alpha/restore",
        headers=live.admin,
        json={"backup_id": backup["id"], "confirm": "alpha"},
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["restored"]["checksum"] == backup["manifest"]["checksum"]
    assert await read_data(live, "alpha") == BEFORE

    # The pre-restore backup holds what was replaced, and can bring it back.
    pre_id = restored.json()["pre_restore_backup_id"]
    listed = (await live.http.get("/api/v1/orgs/alpha/backups", headers=live.admin)).json()
    assert [(b["id"], b["kind"]) for b in listed["items"]] == [
        (pre_id, "pre_restore"),
        (backup["id"], "manual"),
    ]
    back = await live.http.post(
        "/api/v1/orgs/alpha/restore",
        headers=live.admin,
        json={"backup_id": pre_id, "confirm": "alpha"},
    )
    assert back.status_code == 200, back.text
    assert await read_data(live, "alpha") == changed

    async with live.app.state.runtime.sessions() as db:
        actions = (
            await db.exec(select(AuditEvent.action).where(AuditEvent.org_id == org_id))
        ).all()
    assert actions.count("backup.restore") == 2
    assert "backup.create" in actions


async def test_corrupt_archive_is_refused_and_delete_removes_file_and_row(live: Live) -> None:
    await new_org(live, "alpha")
    await write_data(live, "alpha", title="before", file_body=b"first file " * 500)
    backup = (await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)).json()
    await write_data(live, "alpha", title="after", file_body=b"second")
    changed = await read_data(live, "alpha")

    store = store_of(live.app.state.runtime)
    path: Path = store.path(org_id=backup["org_id"], backup_id=backup["id"])
    original = path.read_bytes()
    path.write_bytes(original[:-10] + bytes(10))  # damaged on disk
    refused = await live.http.post(
        "/api/v1/orgs/alpha/restore",
        headers=live.admin,
        json={"backup_id": backup["id"], "confirm": "alpha"},
    )
    assert_problem(refused, 422, "backup_corrupt")
    assert await read_data(live, "alpha") == changed
    async with live.app.state.runtime.sessions() as db:
        kinds = (await db.exec(select(Backup.kind))).all()
    assert kinds == ["manual"]  # no pre-restore backup either: nothing was started

    gone = await live.http.delete(f"/api/v1/orgs/alpha/backups/{backup['id']}", headers=live.admin)
    assert gone.status_code == 204
    assert not path.exists()
    missing = await live.http.get(f"/api/v1/orgs/alpha/backups/{backup['id']}", headers=live.admin)
    assert_problem(missing, 404, "backup_not_found")


async def test_backup_of_a_stopped_org_is_refused(live: Live) -> None:
    org_id = await new_org(live, "alpha")
    stop = await live.http.post(
        f"/api/v1/orgs/{org_id}/instance/actions", headers=live.admin, json={"action": "stop"}
    )
    assert stop.status_code == 202
    from tests.backups.live import wait_phase

    await wait_phase(live.http, live.admin, "alpha", "stopped")
    refused = await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)
    assert_problem(refused, 409, "instance_not_running")
    async with live.app.state.runtime.sessions() as db:
        assert (await db.exec(select(Backup))).all() == []


async def test_no_database_connection_is_held_while_an_archive_moves(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup streams and a restore uploads for as long as the archive takes; the request's
    pooled connection goes back first, so a few slow ones cannot take the whole pool."""
    held_while_moving: list[int] = []

    def counting(move: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            me = asyncio.current_task()
            held_while_moving.append(sum(task is me for task in holders.values()))
            return move(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(service, "backup_stream", counting(service.backup_stream))
    monkeypatch.setattr(service, "send_restore", counting(service.send_restore))
    with pooled_connection_holders(live.app.state.runtime.engine) as holders:
        await new_org(live, "alpha")
        made = await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)
        assert made.status_code == 201, made.text
        restored = await live.http.post(
            "/api/v1/orgs/alpha/restore",
            headers=live.admin,
            json={"backup_id": made.json()["id"], "confirm": "alpha"},
        )
        assert restored.status_code == 200, restored.text
    # The backup, then the restore's pre-restore backup and its upload.
    assert held_while_moving == [0, 0, 0]
