"""The org admin view: members and roles, invites, and staff support-access requests.

Every rule (who may grant which role, the last owner, capacity, who decides access requests)
is the members, invites and support-access services'; these handlers only call them.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.auth import Principal
from control_plane.client_ip import client_ip
from control_plane.db.models import utcnow
from control_plane.deps import DB, RuntimeDep
from control_plane.members.invites import create_invite, invites_page, revoke_invite
from control_plane.members.service import (
    change_role,
    derived_memberships,
    members_page,
    remove_member,
)
from control_plane.orgs.access import ROLES, OrgAccess, rank
from control_plane.orgs.guards import OrgAccessDep
from control_plane.tokens.org_revocation import revoke_user_in_org
from control_plane.tokens.support_access import (
    list_requests,
    owner_decides,
    set_access_approval,
    shown_status,
)
from control_plane.ui.forms import FormErrors, back_to, form_data, notice_of, page, start_over
from control_plane.ui.org_pages import Done
from control_plane.ui.session import Viewer
from orgplane_wire.problems import BadRequest, ProblemError


async def members_context(db: AsyncSession, viewer: Principal, access: OrgAccess) -> dict[str, Any]:
    """What the org admin view shows."""
    org, admin, member = access.org, access.has("admin"), access.has("member")
    sees_requests = admin or access.staff
    requests = (
        (await list_requests(db, org_id=org.id, limit=50, cursor=None))[0] if sees_requests else []
    )
    now = utcnow()
    return {
        "me": viewer.user,
        "org": org,
        "access": access,
        "admin": admin,
        "is_owner": access.role == "owner",
        "roles": ROLES,
        "members": (await members_page(db, org, limit=200, cursor=None)).items if member else [],
        "sees_requests": sees_requests,
        "gated": access.gated,
        "invites": (await invites_page(db, org, limit=100, cursor=None, status=None)).items
        if admin
        else [],
        "requests": [(r, email, shown_status(r, now)) for r, email in requests],
        "errors": FormErrors(),
        "new_invite": None,
        "invite_link": "",
    }


@get("/orgs/{org_ref:str}/members")
async def members_view(
    org_ref: FromPath[str], access: OrgAccessDep, viewer: Viewer, db: DB, done: Done = None
) -> Any:
    """Members with their roles, invites and access requests."""
    return page(
        "org_members.html",
        notice=notice_of(done),
        error="",
        **await members_context(db, viewer, access),
    )


async def _refused(
    db: AsyncSession, viewer: Principal, access: OrgAccess, exc: ProblemError
) -> Any:
    await start_over(db, viewer)
    await db.refresh(access.org)  # the rollback expired it
    return page(
        "org_members.html",
        exc.status,
        notice="",
        error=exc.detail,
        **await members_context(db, viewer, access),
    )


@post("/orgs/{org_ref:str}/invites")
async def invite_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Invite an email with a role; the accept link is shown on this answer only."""
    data = await form_data(request)
    errors = FormErrors()
    role = data.get("role") or "member"
    try:
        if role not in ROLES:
            raise BadRequest("Choose a role.", code="invalid_role", field="role")
        invite, token = await create_invite(
            db,
            principal=viewer,
            access=access,
            email=data.get("email", ""),
            role=role,
            ttl_days=runtime.settings.security.invite_ttl_days,
            ip=client_ip(request),
            mail=runtime.settings,
        )
    except ProblemError as exc:
        await start_over(db, viewer)
        errors.add_problem(exc)
        if not exc.extra.get("field"):
            errors.fields["email"] = exc.detail
        await db.refresh(access.org)  # the rollback expired it
        context = await members_context(db, viewer, access)
        context.update(errors=errors, invite_email=data.get("email", ""))
        return page("org_members.html", exc.status, notice="", error="", **context)
    context = await members_context(db, viewer, access)
    base = str(request.base_url).rstrip("/")
    # The token travels in the fragment, which browsers never send to a server or its logs.
    context.update(new_invite=invite, invite_link=f"{base}/ui/invites/accept#token={token}")
    return page("org_members.html", 201, notice="Invite created.", error="", **context)


@post("/orgs/{org_ref:str}/invites/{invite_id:str}/revoke")
async def invite_revoke_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    invite_id: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
) -> Any:
    """Revoke a pending invite."""
    try:
        await revoke_invite(
            db, principal=viewer, access=access, invite_id=invite_id, ip=client_ip(request)
        )
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc)
    return back_to(f"/ui/orgs/{access.org.slug}/members", "invite_revoked")


@post("/orgs/{org_ref:str}/members/{user_id:str}/role")
async def role_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    user_id: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Give a member another role (their tokens with the old one end)."""
    data = await form_data(request)
    try:
        access.require("admin", to="manage members")
        if data.get("role") not in ROLES:
            raise BadRequest("Choose a role.", code="invalid_role", field="role")
        derived = await derived_memberships(db, user_id=user_id, org_id=access.org.id)
        await change_role(
            db,
            principal=viewer,
            access=access,
            user_id=user_id,
            role=data["role"],
            ip=client_ip(request),
        )
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc)
    also = [m.org_id for m in derived] if rank(data["role"]) < rank("admin") else []
    await revoke_user_in_org(runtime, db, org_id=access.org.id, user_id=user_id, also=also)
    return back_to(f"/ui/orgs/{access.org.slug}/members", "member_updated")


@post("/orgs/{org_ref:str}/members/{user_id:str}/remove")
async def remove_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    user_id: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Remove a member, or leave the org."""
    derived = await derived_memberships(db, user_id=user_id, org_id=access.org.id)
    try:
        await remove_member(
            db, principal=viewer, access=access, user_id=user_id, ip=client_ip(request)
        )
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc)
    also = [m.org_id for m in derived]
    await revoke_user_in_org(runtime, db, org_id=access.org.id, user_id=user_id, also=also)
    if user_id == viewer.user.id:
        return back_to("/ui/orgs", "member_removed")
    return back_to(f"/ui/orgs/{access.org.slug}/members", "member_removed")


@post("/orgs/{org_ref:str}/access-requests/{request_id:str}/{decision:str}")
async def access_request_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    request_id: FromPath[str],
    decision: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """An owner approves or rejects (or revokes) a staff member's support-access request."""
    try:
        if decision not in ("approve", "reject"):
            raise BadRequest("Approve or reject.", code="invalid_decision")
        await owner_decides(
            db,
            runtime,
            Actor.of(request, viewer),
            access,
            request_id=request_id,
            approve=decision == "approve",
        )
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc)
    return back_to(f"/ui/orgs/{access.org.slug}/members", "request_decided")


@post("/orgs/{org_ref:str}/access-approval")
async def access_approval_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
) -> Any:
    """An owner switches whether staff need an approved request to enter the org."""
    data = await form_data(request)
    try:
        if data.get("required") not in ("on", "off"):
            raise BadRequest("Choose on or off.", code="validation_error", field="required")
        await set_access_approval(
            db,
            org=access.org,
            role=access.role,
            owner=viewer.user,
            required=data["required"] == "on",
            ip=client_ip(request),
        )
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc)
    return back_to(f"/ui/orgs/{access.org.slug}/members", "access_approval_changed")


ROUTES = [
    members_view,
    access_approval_submit,
    invite_submit,
    invite_revoke_submit,
    role_submit,
    remove_submit,
    access_request_submit,
]
