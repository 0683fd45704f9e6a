"""Platform admins only: an org's backup key state, its legal hold, and shredding its backups.

``GET /api/v1/orgs/{org_id}/backup-key``, ``PUT .../backup-key/legal-hold`` ``{hold, reason}``
and ``POST .../backup-key/shred`` ``{confirm}`` (the org's id typed again). They take the org's
id, since a deleted org (the usual subject) has given up its slug. Every change is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import get, post, put
from litestar.params import FromPath, JSONBody
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.auth import require_platform_admin
from control_plane.backups.keys import SHREDDED, set_legal_hold
from control_plane.backups.retention import shred_org_backups
from control_plane.db.models import BackupKey, Org
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.orgs.access import org_not_found
from control_plane.runtime import Runtime
from orgplane_wire.problems import ProblemError

BASE = "/api/v1/orgs/{org_id:str}/backup-key"


class BackupKeyOut(msgspec.Struct):
    org_id: str
    #: none (no backup yet), active or shredded.
    state: str
    created_at: datetime | None
    shredded_at: datetime | None
    legal_hold: bool
    legal_hold_reason: str
    legal_hold_changed_at: datetime | None
    #: When housekeeping shreds a deleted org's backups (None: not deleted, or held).
    retention_ends_at: datetime | None


class LegalHoldBody(msgspec.Struct, forbid_unknown_fields=True):
    hold: bool
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ShredBody(msgspec.Struct, forbid_unknown_fields=True):
    """The org's id typed again."""

    confirm: Annotated[str, msgspec.Meta(max_length=64)] = ""


def key_view(runtime: Runtime, org: Org, row: BackupKey | None) -> BackupKeyOut:
    """The API view of an org's backup key (never the key itself)."""
    state = "none" if row is None else "shredded" if row.wrapped_key == SHREDDED else "active"
    held = row is not None and row.legal_hold
    ends = None
    if org.deleted_at is not None and not held and state != "shredded":
        retention = runtime.settings.backup.backup_retention_after_delete
        ends = org.deleted_at + timedelta(seconds=retention)
    return BackupKeyOut(
        org.id,
        state,
        row.created_at if row else None,
        row.shredded_at if row else None,
        held,
        row.legal_hold_reason if row else "",
        row.legal_hold_changed_at if row else None,
        ends,
    )


async def _org(db: AsyncSession, org_id: str) -> Org:
    org = await db.get(Org, org_id) if len(org_id) == 32 else None
    if org is None:
        raise org_not_found()
    return org


@get(BASE, tags=["backups"])
async def get_backup_key(
    org_id: FromPath[str], principal: Caller, db: DB, runtime: RuntimeDep
) -> BackupKeyOut:
    """The org's backup key state, legal hold and retention (deleted orgs too)."""
    require_platform_admin(principal)
    org = await _org(db, org_id)
    return key_view(runtime, org, await db.get(BackupKey, org.id))


@put(BASE + "/legal-hold", tags=["backups"])
async def put_legal_hold(
    org_id: FromPath[str],
    data: JSONBody[LegalHoldBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> BackupKeyOut:
    """Set or release the legal hold: while set, the org's backups outlive its retention and
    its key cannot be shredded."""
    require_platform_admin(actor.principal)
    org = await _org(db, org_id)
    if data.hold and not data.reason.strip():
        raise ProblemError("Say why the backups are held.", status=422, code="reason_required")
    row = await set_legal_hold(runtime, db, org_id=org.id, hold=data.hold, reason=data.reason)
    record(
        db,
        action="backup.legal_hold_set" if data.hold else "backup.legal_hold_released",
        actor=actor.user,
        org_id=org.id,
        target_type="org",
        target_id=org.id,
        ip=actor.ip,
        reason=data.reason,
    )
    await db.commit()
    return key_view(runtime, org, row)


@post(BASE + "/shred", status_code=200, tags=["backups"])
async def shred_backup_key(
    org_id: FromPath[str],
    data: JSONBody[ShredBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> BackupKeyOut:
    """Shred a deleted org's backups now, before its retention ends: its data key is
    destroyed (every copy of its archives becomes unreadable), then the archives removed."""
    require_platform_admin(actor.principal)
    org = await _org(db, org_id)
    if data.confirm != org.id:
        raise ProblemError(
            "Type the org's id as confirm to shred its backups.",
            status=422,
            code="confirmation_required",
        )
    await shred_org_backups(runtime, db, org=org, reason="admin", actor=actor.user, ip=actor.ip)
    return key_view(runtime, org, await db.get(BackupKey, org.id))


ROUTES = [get_backup_key, put_legal_hold, shred_backup_key]
