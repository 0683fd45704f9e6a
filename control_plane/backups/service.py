"""Taking, restoring, importing and deleting backups (the routes and the scheduler call these).

A backup row is committed as ``running`` before the instance is asked, then marked ``ready``
(size, sha256 of the stored file, the manifest's summary) or ``failed`` (the error), so a crash
in between leaves a visible failed-or-stuck row, never a file without a row.

A restore changes nothing until the stored archive's sha256 matches its row
(``backup_corrupt`` otherwise); it then takes a ``pre_restore`` backup of the target and sends
the archive to the target's instance, which verifies every entry again before it swaps.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, BinaryIO, Final

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.backups.crypto import ArchiveUnreadable
from control_plane.backups.instance_api import (
    backup_stream,
    internal_token,
    running_endpoint,
    send_restore,
)
from control_plane.backups.keys import data_key
from control_plane.backups.store import BackupStore, store_for
from control_plane.db.models import Backup, Org, utcnow
from control_plane.runtime import Runtime
from control_plane.webhooks.events import emit
from orgplane_wire.backup.manifest import TOO_LARGE, ArchiveError, peek_manifest
from orgplane_wire.backup.protocol import SCOPE_BACKUP, SCOPE_RESTORE
from orgplane_wire.problems import ProblemError

log = structlog.get_logger("orgplane.backups")

KINDS: Final = ("manual", "scheduled", "import", "pre_restore", "pre_upgrade")


class BackupCorrupt(ProblemError):
    status, code, title = 422, "backup_corrupt", "Backup corrupt"


class ArchiveTooLarge(ProblemError):
    status, code, title = 413, "archive_too_large", "Archive too large"


def archive_refused(exc: ArchiveError, *, prefix: str) -> ProblemError:
    """The problem for an archive that failed verification: 413 when it is over a bound (its
    size, the target org's storage quota), 422 ``backup_corrupt`` or its own code otherwise."""
    if exc.code in TOO_LARGE:
        return ArchiveTooLarge(f"{prefix}: {exc.message}", code=exc.code)
    return BackupCorrupt(f"{prefix}: {exc.message}", code=exc.code)


def store_of(runtime: Runtime) -> BackupStore:
    """The backup store the settings name."""
    return store_for(runtime.settings)


async def _fail(runtime: Runtime, row_id: str, org_id: str, error: BaseException) -> str:
    """Mark the row failed in a session of its own (the caller's may be mid-failure)."""
    await asyncio.to_thread(store_of(runtime).delete, org_id=org_id, backup_id=row_id)
    message = (getattr(error, "detail", "") or str(error) or type(error).__name__)[:2000]
    async with runtime.sessions() as other:
        row = await other.get(Backup, row_id)
        if row is not None:
            row.status, row.completed_at, row.error = "failed", utcnow(), message
            other.add(row)
            data = {"org_id": org_id, "backup_id": row_id, "kind": row.kind, "error": message}
            emit(other, "backup.failed", data)
            await other.commit()
    return message


async def _finish(
    db: AsyncSession, row: Backup, store: BackupStore, key: bytes, size: int, sha: str
) -> None:
    def manifest_of() -> dict[str, Any]:
        with store.open(org_id=row.org_id, backup_id=row.id, data_key=key) as raw:
            return peek_manifest(raw).summary()

    row.manifest = await asyncio.to_thread(manifest_of)
    row.size_bytes, row.sha256 = size, sha
    row.status, row.completed_at = "ready", utcnow()
    db.add(row)
    await db.commit()


async def take_backup(
    runtime: Runtime,
    db: AsyncSession,
    *,
    org: Org,
    kind: str,
    created_by: str,
    slot: str | None = None,
) -> Backup:
    """Archive ``org``'s data into the store; the ready row, or the problem that stopped it.

    With ``slot`` the row insert is the claim: IntegrityError when another replica has it.
    """
    endpoint = await running_endpoint(db, org)
    row = Backup(org_id=org.id, kind=kind, created_by=created_by, schedule_slot=slot)
    db.add(row)
    await db.commit()
    store, row_id, org_id = store_of(runtime), row.id, org.id
    try:
        token = await internal_token(runtime, db, org=org, scope=SCOPE_BACKUP)
        await db.commit()  # the pool's connection goes back while the archive streams
        key = await data_key(runtime, org_id, create=True)
        assert key is not None  # made when missing
        async with backup_stream(endpoint=endpoint, token=token) as response:
            size, sha = await store.save(
                org_id=org_id,
                backup_id=row_id,
                chunks=response.aiter_raw(),
                max_bytes=runtime.settings.backup.backup_max_bytes,
                data_key=key,
            )
        await _finish(db, row, store, key, size, sha)
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, SQLAlchemyError):
            await db.rollback()
        error = await _fail(runtime, row_id, org_id, exc)
        log.warning("backup failed", org_id=org_id, kind=kind, error=error)
        _count(runtime, kind, "failed")
        if isinstance(exc, ArchiveError):
            raise BackupCorrupt(f"The instance sent an unreadable archive: {exc.message}") from None
        raise
    log.info("backup taken", org_id=org.id, kind=kind, backup_id=row.id, bytes=row.size_bytes)
    _count(runtime, kind, "ok")
    return row


def _count(runtime: Runtime, kind: str, outcome: str) -> None:
    if runtime.metrics is not None:
        runtime.metrics.backups.labels(kind, outcome).inc()


async def archive_key(runtime: Runtime, backup: Backup) -> bytes | None:
    """The data key that reads ``backup``'s archive (410 ``backup_key_shredded`` once it was
    shredded; None for an org that never had one: only plaintext archives can be read)."""
    return await data_key(runtime, backup.org_id, create=False)


async def open_stored(runtime: Runtime, backup: Backup) -> BinaryIO:
    """The backup's plaintext archive, decrypted as it is read; 422 ``backup_corrupt`` when it
    is missing or its first chunk does not decrypt (a later damaged chunk raises
    ``ArchiveUnreadable`` from the read)."""
    key = await archive_key(runtime, backup)
    try:
        return await asyncio.to_thread(
            store_of(runtime).open, org_id=backup.org_id, backup_id=backup.id, data_key=key
        )
    except (FileNotFoundError, ArchiveUnreadable) as exc:
        log.error("stored backup unreadable", backup_id=backup.id, error=str(exc))
        raise BackupCorrupt("The stored archive is missing or does not decrypt.") from None


async def check_stored(runtime: Runtime, backup: Backup) -> bytes | None:
    """422 ``backup_corrupt`` unless the stored file is there, decrypts and matches the row's
    sha256; returns the key that reads it."""
    if backup.status != "ready":
        raise BackupCorrupt("Only a completed backup can be restored.", code="backup_not_ready")
    key = await archive_key(runtime, backup)
    try:
        actual = await asyncio.to_thread(
            store_of(runtime).sha256, org_id=backup.org_id, backup_id=backup.id, data_key=key
        )
    except ArchiveUnreadable as exc:
        log.error("stored backup does not decrypt", backup_id=backup.id, error=str(exc))
        actual = None
    if actual != backup.sha256:
        log.error("stored backup does not match its checksum", backup_id=backup.id)
        raise BackupCorrupt(
            "The stored archive is missing or does not match its checksum; nothing was changed."
        )
    return key


async def restore_into(
    runtime: Runtime, db: AsyncSession, *, backup: Backup, target: Org, actor_id: str
) -> tuple[Backup, dict[str, Any]]:
    """Restore ``backup`` into ``target``; returns the pre-restore backup and the answer."""
    await running_endpoint(db, target)
    key = await check_stored(runtime, backup)
    pre = await take_backup(runtime, db, org=target, kind="pre_restore", created_by=actor_id)
    token = await internal_token(runtime, db, org=target, scope=SCOPE_RESTORE)
    chunks = store_of(runtime).chunks(org_id=backup.org_id, backup_id=backup.id, data_key=key)
    size = backup.size_bytes
    endpoint = await running_endpoint(db, target)
    await db.commit()  # the pool's connection goes back while the archive uploads
    async with aclosing(chunks):  # the file is closed even when the instance stops reading
        answer = await send_restore(endpoint=endpoint, token=token, chunks=chunks, size=size)
    log.info("restored", backup_id=backup.id, org_id=target.id, source_org_id=backup.org_id)
    return pre, answer


async def delete_backup(runtime: Runtime, db: AsyncSession, backup: Backup) -> None:
    """Remove the archive, then the row (a crash in between leaves a row whose file is gone,
    which a restore refuses as ``backup_corrupt``)."""
    await asyncio.to_thread(store_of(runtime).delete, org_id=backup.org_id, backup_id=backup.id)
    await db.delete(backup)
