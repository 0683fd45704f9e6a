"""``/internal/backup`` and ``/internal/restore``: the control plane's access to the org's data.

Only the control plane may call them (a token with :data:`CONTROL_PLANE_SUBJECT` and the
operation's scope, verified like any org token, so a token for another org is refused too).

A restore verifies the whole archive before anything changes, then puts the instance in
maintenance, closes the database, swaps the data under the journal, opens the restored
database the way a boot does (migrations, integrity check) and serves again: the org's API is
stopped, restored, checked and started again within this process. A failure at any point
leaves the data as it was (see :mod:`org_instance.backup.restore`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from litestar import Request, post
from litestar.response import Stream

from org_instance.auth import Member
from org_instance.backup.archive import snapshot, write_archive
from org_instance.backup.gate import MaintenanceGate
from org_instance.backup.restore import stage, swap
from org_instance.db import Database
from org_instance.deps import Caller, Instance
from org_instance.runtime import InstanceRuntime
from org_instance.workspace.files import stored_bytes
from orgplane_wire.backup.manifest import CHUNK, TOO_LARGE, ArchiveError
from orgplane_wire.backup.protocol import (
    BACKUP_PATH,
    CHECKSUM_HEADER,
    CONTROL_PLANE_SUBJECT,
    DEFAULT_RESTORE_MAX_BYTES,
    RESTORE_MAX_BYTES_ENV,
    RESTORE_PATH,
    SCOPE_BACKUP,
    SCOPE_RESTORE,
)
from orgplane_wire.problems import Forbidden, PayloadTooLarge, ProblemError

log = structlog.get_logger("orgplane.instance.backup")


class InvalidArchive(ProblemError):
    status, code, title = 422, "invalid_archive", "Invalid archive"


def archive_problem(exc: ArchiveError) -> ProblemError:
    """413 for an archive over a bound (size, the org's storage), 422 for any other fault."""
    if exc.code in TOO_LARGE:
        return PayloadTooLarge(exc.message, code=exc.code)
    return InvalidArchive(exc.message, code=exc.code)


def require_control_plane(caller: Member, scope: str) -> None:
    """403 ``control_plane_only`` unless the token is the control plane's, for ``scope``."""
    scopes = str(caller.claims.get("scope", "")).split()
    if caller.sub != CONTROL_PLANE_SUBJECT or scope not in scopes:
        raise Forbidden("Only the control plane may do this.", code="control_plane_only")


def restore_max_bytes() -> int:
    """The largest archive a restore accepts (compressed, and uncompressed)."""
    raw = os.environ.get(RESTORE_MAX_BYTES_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_RESTORE_MAX_BYTES


def _gate(request: Request[Any, Any, Any]) -> MaintenanceGate:
    gate: MaintenanceGate = request.app.state.maintenance
    return gate


async def _stream_then_remove(work: Path) -> AsyncIterator[bytes]:
    try:
        handle = await asyncio.to_thread((work / "archive.tar.gz").open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


@post(BACKUP_PATH, status_code=200, include_in_schema=False)
async def take_backup(
    request: Request[Any, Any, Any], caller: Caller, instance: Instance
) -> Stream:
    """A consistent archive of the org's data (database and files), streamed."""
    require_control_plane(caller, SCOPE_BACKUP)
    config = instance.config
    work = config.data_dir / f".backup-{uuid.uuid4().hex}"
    async with _gate(request).operation():
        try:
            version = await instance.db.run_raw(
                partial(
                    snapshot,
                    db_path=instance.db.path,
                    files_dir=instance.files_dir,
                    into=work / "staged",
                )
            )
            manifest = await asyncio.to_thread(
                partial(
                    write_archive,
                    staged=work / "staged",
                    out=work / "archive.tar.gz",
                    org_id=config.org_id,
                    org_slug=config.org_slug,
                    schema_version=version,
                )
            )
            await asyncio.to_thread(shutil.rmtree, work / "staged")
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, work, True)
            raise
    log.info("backup taken", entries=len(manifest.entries), bytes=manifest.total_bytes)
    return Stream(
        _stream_then_remove(work),
        media_type="application/gzip",
        headers={CHECKSUM_HEADER: manifest.checksum},
    )


async def _receive(request: Request[Any, Any, Any], path: Path, limit: int) -> None:
    received = 0
    handle = await asyncio.to_thread(path.open, "xb")
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge("The archive is larger than allowed.", limit=limit)
            buffer += chunk
            if len(buffer) >= CHUNK:
                await asyncio.to_thread(handle.write, bytes(buffer))
                buffer.clear()
        await asyncio.to_thread(handle.write, bytes(buffer))
    finally:
        await asyncio.to_thread(handle.close)


async def _swap_and_reopen(instance: InstanceRuntime) -> None:
    await instance.db.close()
    try:
        await asyncio.to_thread(swap, data_dir=instance.config.data_dir)
    finally:
        # Restored or rolled back, the data directory is consistent: open it as a boot does.
        instance.db = Database(instance.db.path)
        await instance.db.open()
        instance.usage.storage_bytes = await asyncio.to_thread(stored_bytes, instance.files_dir)


@post(RESTORE_PATH, status_code=200, include_in_schema=False, request_max_body_size=None)
async def restore_backup(
    request: Request[Any, Any, Any], caller: Caller, instance: Instance
) -> dict[str, Any]:
    """Replace the org's data with the archive in the body, all or nothing."""
    require_control_plane(caller, SCOPE_RESTORE)
    data_dir, limit = instance.config.data_dir, restore_max_bytes()
    gate = _gate(request)
    async with gate.operation():
        upload = data_dir / f".restore-upload-{uuid.uuid4().hex}"
        try:
            await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
            await _receive(request, upload, limit)
            quota = instance.limits.get("max_storage_bytes")
            manifest = await asyncio.to_thread(
                partial(stage, archive=upload, data_dir=data_dir, max_bytes=limit, quota=quota)
            )
        except ArchiveError as exc:
            raise archive_problem(exc) from None
        finally:
            await asyncio.to_thread(upload.unlink, missing_ok=True)
        await gate.enter()
        try:
            await _swap_and_reopen(instance)
        except ArchiveError as exc:
            raise archive_problem(exc) from None
        finally:
            gate.leave()
    log.info(
        "restored",
        source_org_id=manifest.org_id,
        entries=len(manifest.entries),
        bytes=manifest.total_bytes,
    )
    return {"restored": manifest.summary()}


ROUTES = [take_backup, restore_backup]
