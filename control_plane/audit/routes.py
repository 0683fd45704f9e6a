"""Audit API: read-only, newest first. There is no endpoint that changes or removes an event.

Platform admins read every event. Org admins (and owners, and admins of a parent) read the
events of the orgs they administer: with ``org_id``, that org's (404 if they cannot see it, 403
if they are only a member); without, those of all their orgs. Events with no org (logins,
user administration) are for platform admins only.

One org's whole log, as a file, is ``GET /api/v1/orgs/{org}/audit/export``
(:mod:`control_plane.audit.export`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.params import FromQuery, QueryParameter

from control_plane.audit.export import export_audit
from control_plane.audit.query import events_page
from control_plane.audit.schemas import AuditEventOut
from control_plane.deps import DB, Caller
from orgplane_wire.cursors import Page

QueryText = Annotated[str | None, QueryParameter(max_length=200)]


@get("/api/v1/audit", tags=["audit"])
async def list_events(
    principal: Caller,
    db: DB,
    org_id: QueryText = None,
    actor_id: QueryText = None,
    action: QueryText = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    limit: FromQuery[int] = 50,
    cursor: QueryText = None,
) -> Page[AuditEventOut]:
    """Audit events, newest first, filtered by org, actor, action (``org.*`` for a prefix)
    and time (``since`` inclusive, ``until`` exclusive)."""
    return await events_page(
        db,
        principal,
        org_id=org_id,
        actor_id=actor_id,
        action=action,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


ROUTES = [list_events, export_audit]
