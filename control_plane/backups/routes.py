"""Backups API: ``/api/v1/orgs/{org}/backups`` (create, list, get, download, delete) and
``POST /api/v1/orgs/{org}/restore``.

Only the org's owners and admins (and platform admins) use it; an org the caller cannot see
answers 404 as if it did not exist, a member gets 403 ``admin_required``. Restoring a backup of
another org needs admin rights on both, and the target's slug typed as ``confirm``.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.backups.service import (
    delete_backup,
    open_stored,
    restore_into,
    take_backup,
)
from control_plane.backups.store import read_chunks
from control_plane.client_ip import client_ip
from control_plane.db.models import Backup, Org
from control_plane.db.phases import DesiredState
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.orgs.access import org_access
from control_plane.orgs.events import add_event
from control_plane.orgs.guards import OrgAccessDep, needs_role
from control_plane.pagination import newest_first, timestamp_cursor
from orgplane_wire.cursors import Page, check_limit
from orgplane_wire.problems import Conflict, NotFound, ProblemError

BASE = "/api/v1/orgs/{org_ref:str}"
SHA256_HEADER = "X-Orgplane-Backup-Sha256"


class BackupOut(msgspec.Struct):
    id: str
    org_id: str
    kind: str
    status: str
    size_bytes: int
    sha256: str
    manifest: dict[str, Any]
    created_at: datetime
    completed_at: datetime | None
    created_by: str
    error: str


class RestoreBody(msgspec.Struct, forbid_unknown_fields=True):
    """Which backup to restore, and the target org's slug typed again."""

    backup_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    confirm: Annotated[str, msgspec.Meta(max_length=100)] = ""


class RestoreOut(msgspec.Struct):
    backup_id: str
    org_id: str
    pre_restore_backup_id: str
    restored: dict[str, Any]


def backup_out(row: Backup) -> BackupOut:
    """The API view of a backup row."""
    return BackupOut(
        row.id,
        row.org_id,
        row.kind,
        row.status,
        row.size_bytes,
        row.sha256,
        row.manifest,
        row.created_at,
        row.completed_at,
        row.created_by,
        row.error,
    )


async def audit(
    db: AsyncSession,
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    action: str,
    org_id: str,
    target: tuple[str, str],
    outcome: str = "success",
    **detail: Any,
) -> None:
    """Record an audit event of the caller on ``target`` (type, id) and commit it."""
    record(
        db,
        action=action,
        actor=principal.user,
        org_id=org_id,
        target_type=target[0],
        target_id=target[1],
        outcome=outcome,
        ip=client_ip(request),
        **detail,
    )
    await db.commit()


def require_confirmation(org: Org, confirm: str) -> None:
    """422 ``confirmation_required`` unless ``confirm`` is the org's slug."""
    if confirm != org.slug:
        raise ProblemError(
            f"Type the org's slug ({org.slug}) as confirm to replace its data.",
            status=422,
            code="confirmation_required",
        )


async def admin_org(db: AsyncSession, principal: Principal, org_ref: str, *, to: str) -> Org:
    """The org, if the caller is its admin or owner (404 when invisible, 403 when a member)."""
    access = await org_access(db, principal, org_ref)
    access.require("admin", to=to)
    return access.org


def _not_found() -> NotFound:
    return NotFound("No such backup.", code="backup_not_found")


async def _backup_of(db: AsyncSession, org: Org, backup_id: str) -> Backup:
    row = await db.get(Backup, backup_id) if len(backup_id) <= 64 else None
    if row is None or row.org_id != org.id:
        raise _not_found()
    return row


@post(
    BASE + "/backups",
    status_code=HTTP_201_CREATED,
    tags=["backups"],
    opt=needs_role("admin", to="back up its data"),
)
async def create_backup(
    request: Request[Any, Any, Any],
    access: OrgAccessDep,
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> BackupOut:
    """Take a backup of the org's data now (the instance must be running)."""
    org = access.org
    row = await take_backup(runtime, db, org=org, kind="manual", created_by=principal.user.id)
    await audit(
        db,
        request,
        principal,
        action="backup.create",
        org_id=org.id,
        target=("backup", row.id),
        size_bytes=row.size_bytes,
    )
    return backup_out(row)


@get(BASE + "/backups", tags=["backups"], opt=needs_role("admin", to="see its backups"))
async def list_backups(
    access: OrgAccessDep,
    db: DB,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str] = "",
) -> Page[BackupOut]:
    """The org's backups, newest first, one page at a time."""
    org = access.org
    query = select(Backup).where(col(Backup.org_id) == org.id)
    query = newest_first(query, col(Backup.created_at), col(Backup.id), cursor)
    rows = (await db.exec(query.limit(check_limit(limit) + 1))).all()
    more = len(rows) > limit
    items = [backup_out(r) for r in rows[:limit]]
    last = rows[limit - 1] if more else None
    return Page(items, timestamp_cursor(last.created_at, last.id) if last else None)


@get(
    BASE + "/backups/{backup_id:str}",
    tags=["backups"],
    opt=needs_role("admin", to="see its backups"),
)
async def get_backup(backup_id: FromPath[str], access: OrgAccessDep, db: DB) -> BackupOut:
    """One backup."""
    org = access.org
    return backup_out(await _backup_of(db, org, backup_id))


@get(
    BASE + "/backups/{backup_id:str}/archive",
    tags=["backups"],
    opt=needs_role("admin", to="download its backups"),
)
async def download_backup(
    request: Request[Any, Any, Any],
    backup_id: FromPath[str],
    access: OrgAccessDep,
    db: DB,
    runtime: RuntimeDep,
) -> Stream:
    """The archive, decrypted; its SHA-256 is in ``X-Orgplane-Backup-Sha256`` and
    ``Repr-Digest``."""
    org = access.org
    row = await _backup_of(db, org, backup_id)
    if row.status != "ready":
        raise Conflict("The backup is not complete.", code="backup_not_ready")
    # Opened (the key, the file, its first chunk) before the answer starts; each later chunk
    # is authenticated as it is read, so a damaged archive cuts the download short.
    reader = await open_stored(runtime, row)
    digest = base64.b64encode(bytes.fromhex(row.sha256)).decode()
    name = f"{org.slug}-{row.created_at:%Y%m%dT%H%M%SZ}-{row.id[:8]}.tar.gz"
    return Stream(
        read_chunks(reader),
        media_type="application/gzip",
        headers={
            SHA256_HEADER: row.sha256,
            "Repr-Digest": f"sha-256=:{digest}:",
            "Content-Length": str(row.size_bytes),
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@delete(
    BASE + "/backups/{backup_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    tags=["backups"],
    opt=needs_role("admin", to="delete its backups"),
)
async def remove_backup(
    request: Request[Any, Any, Any],
    backup_id: FromPath[str],
    access: OrgAccessDep,
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> None:
    """Delete the archive and its row."""
    org = access.org
    row = await _backup_of(db, org, backup_id)
    await delete_backup(runtime, db, row)
    await audit(
        db, request, principal, action="backup.delete", org_id=org.id, target=("backup", row.id)
    )


async def _retained_for_staff(db: AsyncSession, principal: Principal, org_id: str) -> bool:
    """Whether ``org_id`` is a deleted org whose backups a platform admin may still restore
    (during its retention, docs/backups.md; a shredded one answers 410 later)."""
    if not principal.is_platform_admin:
        return False
    org = await db.get(Org, org_id)
    return org is not None and (
        org.deleted_at is not None or org.desired_state == DesiredState.DELETED
    )


async def _source_backup(db: AsyncSession, principal: Principal, target: Org, ref: str) -> Backup:
    row = await db.get(Backup, ref) if len(ref) <= 64 else None
    if row is None:
        raise _not_found()
    if row.org_id != target.id:
        try:  # moving data between orgs needs admin rights on the source too
            await admin_org(db, principal, row.org_id, to="restore its backups elsewhere")
        except NotFound:
            if not await _retained_for_staff(db, principal, row.org_id):
                raise _not_found() from None
    return row


@post(
    BASE + "/restore",
    status_code=200,
    tags=["backups"],
    opt=needs_role("admin", to="restore its data"),
)
async def restore_backup(
    request: Request[Any, Any, Any],
    data: JSONBody[RestoreBody],
    access: OrgAccessDep,
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> RestoreOut:
    """Replace the org's data with a backup (of this org or, as its admin, another)."""
    target = access.org
    require_confirmation(target, data.confirm)
    source = await _source_backup(db, principal, target, data.backup_id)
    detail: dict[str, Any] = {
        "action": "backup.restore",
        "org_id": target.id,
        "target": ("org", target.id),
        "source_org_id": source.org_id,
        "backup_id": source.id,
    }
    try:
        pre, answer = await restore_into(
            runtime, db, backup=source, target=target, actor_id=principal.user.id
        )
    except ProblemError as exc:
        await audit(db, request, principal, outcome="failure", code=exc.code, **detail)
        raise
    add_event(db, org_id=target.id, kind="backup.restored", message=f"from backup {source.id}")
    await audit(db, request, principal, pre_restore_backup_id=pre.id, **detail)
    return RestoreOut(source.id, target.id, pre.id, dict(answer.get("restored", {})))


ROUTES = [create_backup, list_backups, get_backup, download_backup, remove_backup, restore_backup]
