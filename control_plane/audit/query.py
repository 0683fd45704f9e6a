"""Reading the audit log, newest first: who may read which events (see ``audit/routes.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit.schemas import AuditEventOut, event_out
from control_plane.auth import Principal
from control_plane.db.models import AuditEvent
from control_plane.orgs.access import caller_roles, org_access, rank
from orgplane_wire.cursors import Page, check_limit, decode_cursor, encode_cursor
from orgplane_wire.problems import BadRequest, Forbidden


def _cursor_id(cursor: str) -> int:
    (last,) = decode_cursor(cursor, 1)
    if not (last.isascii() and last.isdigit() and len(last) <= 18):
        raise BadRequest("The cursor is not valid.", code="invalid_cursor", field="cursor")
    return int(last)


async def events_page(
    db: AsyncSession,
    principal: Principal,
    *,
    org_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditEventOut]:
    """The events ``principal`` may read, filtered by org, actor, action (``org.*`` for a
    prefix) and time (``since`` inclusive, ``until`` exclusive)."""
    check_limit(limit)
    query = select(AuditEvent)
    if not principal.is_platform_admin:
        if org_id is not None:
            access = await org_access(db, principal, org_id)
            access.require("admin", to="read its audit log")
            scope = [access.org.id]
        else:
            roles = await caller_roles(db, principal.user)
            scope = [oid for oid, role in roles.items() if rank(role) >= rank("admin")]
            if not scope:
                raise Forbidden(
                    "Only org admins and platform admins read the audit log.", code="admin_required"
                )
        query = query.where(col(AuditEvent.org_id).in_(scope))
    elif org_id is not None:
        query = query.where(col(AuditEvent.org_id) == org_id)
    if actor_id is not None:
        query = query.where(col(AuditEvent.actor_id) == actor_id)
    if action is not None:
        query = query.where(
            col(AuditEvent.action).startswith(action[:-1], autoescape=True)
            if action.endswith("*")
            else col(AuditEvent.action) == action
        )
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    if until is not None:
        query = query.where(col(AuditEvent.at) < until)
    if cursor:
        query = query.where(col(AuditEvent.id) < _cursor_id(cursor))
    rows = list((await db.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit + 1))).all())
    more, rows = len(rows) > limit, rows[:limit]
    nxt = encode_cursor(str(rows[-1].id)) if more else None
    return Page([event_out(e) for e in rows], nxt)
