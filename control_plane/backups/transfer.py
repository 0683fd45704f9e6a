"""Export and import: an org's data as a documented archive, out of and into a deployment.

``GET /api/v1/orgs/{org}/export`` streams a fresh archive straight from the instance (nothing
is kept). ``POST /api/v1/orgs/{org}/import?confirm=<slug>`` takes an archive as the body, stores
it as a backup of kind ``import`` after checking every entry against its manifest, and restores
it into the org (a new org, created for it, is the usual target). The format is described field
by field in ``docs/backups.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from litestar import Request, get, post
from litestar.params import FromQuery
from litestar.response import Stream

from control_plane.backups.instance_api import backup_stream, internal_token, running_endpoint
from control_plane.backups.keys import data_key
from control_plane.backups.routes import (
    RestoreOut,
    audit,
    require_confirmation,
)
from control_plane.backups.service import archive_refused, restore_into, store_of
from control_plane.db.models import Backup, utcnow
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.orgs.events import add_event
from control_plane.orgs.guards import OrgAccessDep, needs_role
from control_plane.orgs.hierarchy import effective_limits
from orgplane_wire.backup.manifest import ArchiveError, read_archive
from orgplane_wire.backup.protocol import SCOPE_BACKUP

BASE = "/api/v1/orgs/{org_ref:str}"


@get(BASE + "/export", tags=["backups"], opt=needs_role("admin", to="export its data"))
async def export_org(
    request: Request[Any, Any, Any],
    access: OrgAccessDep,
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> Stream:
    """A fresh archive of the org's data (format ``orgplane-backup/1``), streamed."""
    org = access.org
    endpoint = await running_endpoint(db, org)
    token = await internal_token(runtime, db, org=org, scope=SCOPE_BACKUP)
    stack = AsyncExitStack()
    response = await stack.enter_async_context(backup_stream(endpoint=endpoint, token=token))
    await audit(db, request, principal, action="org.export", org_id=org.id, target=("org", org.id))

    async def relay() -> AsyncIterator[bytes]:
        async with stack:
            async for chunk in response.aiter_raw():
                yield chunk

    return Stream(
        relay(),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{org.slug}-export.tar.gz"'},
    )


@post(
    BASE + "/import",
    status_code=200,
    tags=["backups"],
    request_max_body_size=None,
    opt=needs_role("admin", to="import data into it"),
)
async def import_org(
    request: Request[Any, Any, Any],
    access: OrgAccessDep,
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
    confirm: FromQuery[str] = "",
) -> RestoreOut:
    """Replace the org's data with the archive in the body (kept as an ``import`` backup)."""
    org = access.org
    require_confirmation(org, confirm)
    await running_endpoint(db, org)
    store, limit = store_of(runtime), runtime.settings.backup.backup_max_bytes
    # Bounded by the org's storage quota on the files' real bytes, not the manifest's sizes.
    quota = (await effective_limits(db, org)).get("max_storage_bytes")
    row = Backup(org_id=org.id, kind="import", created_by=principal.user.id)
    db.add(row)
    await db.commit()
    org_id, row_id = org.id, row.id
    try:
        key = await data_key(runtime, org_id, create=True)
        assert key is not None  # made when missing
        size, sha = await store.save(
            org_id=org_id, backup_id=row_id, chunks=request.stream(), max_bytes=limit, data_key=key
        )

        def verify() -> dict[str, Any]:
            with store.open(org_id=org_id, backup_id=row_id, data_key=key) as raw:
                return read_archive(raw, max_bytes=limit, storage_quota=quota).summary()

        row.manifest = await asyncio.to_thread(verify)
    except (Exception, asyncio.CancelledError) as exc:
        await asyncio.to_thread(store.delete, org_id=org_id, backup_id=row_id)
        row.status, row.completed_at, row.error = "failed", utcnow(), str(exc)[:2000]
        db.add(row)
        await db.commit()
        if isinstance(exc, ArchiveError):
            raise archive_refused(exc, prefix="The archive is not valid") from None
        raise
    row.size_bytes, row.sha256, row.status, row.completed_at = size, sha, "ready", utcnow()
    db.add(row)
    await db.commit()
    pre, answer = await restore_into(
        runtime, db, backup=row, target=org, actor_id=principal.user.id
    )
    add_event(db, org_id=org.id, kind="backup.imported", message=f"import {row.id}")
    await audit(
        db,
        request,
        principal,
        action="org.import",
        org_id=org.id,
        target=("org", org.id),
        backup_id=row.id,
        source_org_id=str(row.manifest.get("org_id", "")),
        pre_restore_backup_id=pre.id,
    )
    return RestoreOut(row.id, org.id, pre.id, dict(answer.get("restored", {})))


ROUTES = [export_org, import_org]
