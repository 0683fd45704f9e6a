"""Access requests (staff support access to orgs that require approval) and access events.

    POST /api/v1/orgs/{org_ref}/access-requests                 platform admin, not a member
    GET  /api/v1/orgs/{org_ref}/access-requests                 org admins and owners, staff
    POST /api/v1/orgs/{org_ref}/access-requests/{id}/approve    org owners
    POST /api/v1/orgs/{org_ref}/access-requests/{id}/reject     org owners (also revokes)
    GET  /api/v1/orgs/{org_ref}/access-events                   org admins and owners, staff
    PUT  /api/v1/orgs/{org_ref}/access-approval {required}      org owners

Approving is for the org's own owners only: a platform admin acts as an owner elsewhere, but
letting staff approve their own access would make the approval meaningless.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor, ActorDep
from control_plane.db.models import AccessRequest, AuditEvent, utcnow
from control_plane.deps import DB, RuntimeDep
from control_plane.orgs.access import OrgAccess
from control_plane.orgs.guards import OrgAccessDep
from control_plane.orgs.schemas import OrgOut
from control_plane.orgs.service import org_out
from control_plane.runtime import Runtime
from control_plane.tokens.support_access import (
    MAX_REASON,
    file_request,
    list_access_events,
    list_requests,
    owner_decides,
    set_access_approval,
    shown_status,
)
from orgplane_wire.cursors import Page
from orgplane_wire.problems import Conflict, Forbidden

BASE = "/api/v1/orgs/{org_ref:str}"


class AccessRequestBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON)]


class AccessRequestOut(msgspec.Struct):
    id: str
    org_id: str
    staff_user_id: str
    staff_email: str
    reason: str
    status: str
    decided_by: str | None
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, request: AccessRequest, staff_email: str) -> AccessRequestOut:
        """The answer for ``request``."""
        return cls(
            id=request.id,
            org_id=request.org_id,
            staff_user_id=request.staff_user_id,
            staff_email=staff_email,
            reason=request.reason,
            status=shown_status(request, utcnow()),
            decided_by=request.decided_by,
            created_at=request.created_at,
            decided_at=request.decided_at,
            expires_at=request.expires_at,
        )


class AccessEventOut(msgspec.Struct):
    id: int
    at: datetime
    action: str
    actor_id: str | None
    actor_email: str
    reason: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AccessEventOut:
        """The answer for ``event``."""
        return cls(
            id=event.id or 0,
            at=event.at,
            action=event.action,
            actor_id=event.actor_id,
            actor_email=event.actor_email,
            reason=str(event.detail.get("reason", "")),
            detail=event.detail,
        )


def _require_admin_or_staff(access: OrgAccess) -> None:
    # Staff see requests and access events even behind the gate: they are the gate's own record.
    if not (access.staff or access.has("admin")):
        raise Forbidden(
            "You need the admin role in this org to see its access requests.", code="admin_required"
        )


@post(f"{BASE}/access-requests", status_code=HTTP_201_CREATED, tags=["support access"])
async def create_access_request(
    data: JSONBody[AccessRequestBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> AccessRequestOut:
    """A platform admin asks an org's owners for support access, stating why."""
    if not access.staff:
        raise Forbidden(
            "Only platform admins request support access.", code="platform_admin_required"
        )
    if access.role is not None:
        raise Conflict(
            "You are a member of this org; no access request is needed.", code="already_member"
        )
    created = await file_request(
        db, org=access.org, staff=actor.user, reason=data.reason, ip=actor.ip
    )
    return AccessRequestOut.of(created, actor.user.email)


@get(f"{BASE}/access-requests", tags=["support access"])
async def get_access_requests(
    access: OrgAccessDep,
    db: DB,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Page[AccessRequestOut]:
    """The org's access requests, newest first (org admins and owners, platform admins)."""
    _require_admin_or_staff(access)
    rows, nxt = await list_requests(db, org_id=access.org.id, limit=limit, cursor=cursor)
    return Page([AccessRequestOut.of(req, email) for req, email in rows], nxt)


async def _decide(
    access: OrgAccess,
    request_id: str,
    approve: bool,
    actor: Actor,
    runtime: Runtime,
    db: AsyncSession,
) -> AccessRequestOut:
    decided, staff_email = await owner_decides(
        db, runtime, actor, access, request_id=request_id, approve=approve
    )
    return AccessRequestOut.of(decided, staff_email)


@post(
    f"{BASE}/access-requests/{{request_id:str}}/approve",
    status_code=HTTP_200_OK,
    tags=["support access"],
)
async def approve_access_request(
    access: OrgAccessDep,
    request_id: FromPath[str],
    actor: ActorDep,
    runtime: RuntimeDep,
    db: DB,
) -> AccessRequestOut:
    """An owner lets the staff member in for ``access_approval_ttl`` seconds."""
    return await _decide(access, request_id, True, actor, runtime, db)


@post(
    f"{BASE}/access-requests/{{request_id:str}}/reject",
    status_code=HTTP_200_OK,
    tags=["support access"],
)
async def reject_access_request(
    access: OrgAccessDep,
    request_id: FromPath[str],
    actor: ActorDep,
    runtime: RuntimeDep,
    db: DB,
) -> AccessRequestOut:
    """An owner refuses a pending request, or revokes an approval before it ends."""
    return await _decide(access, request_id, False, actor, runtime, db)


@get(f"{BASE}/access-events", tags=["support access"])
async def get_access_events(
    access: OrgAccessDep,
    db: DB,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Page[AccessEventOut]:
    """Every staff access to the org and every access-request decision, newest first."""
    _require_admin_or_staff(access)
    events, nxt = await list_access_events(db, org_id=access.org.id, limit=limit, cursor=cursor)
    return Page([AccessEventOut.of(event) for event in events], nxt)


class AccessApprovalBody(msgspec.Struct, forbid_unknown_fields=True):
    required: bool


@put(f"{BASE}/access-approval", tags=["support access"])
async def put_access_approval(
    data: JSONBody[AccessApprovalBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> OrgOut:
    """An owner switches whether staff need an approved request to enter the org."""
    org = await set_access_approval(
        db,
        org=access.org,
        role=access.role,
        owner=actor.user,
        required=data.required,
        ip=actor.ip,
    )
    return await org_out(db, org, access.role)


ROUTES = [
    create_access_request,
    get_access_requests,
    approve_access_request,
    reject_access_request,
    get_access_events,
    put_access_approval,
]
