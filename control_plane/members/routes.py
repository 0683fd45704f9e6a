"""Memberships API: an org's members, and the caller's own orgs (the org switcher)."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlmodel import col, select

from control_plane.actor import ActorDep
from control_plane.db.models import Org, User
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.members.invite_routes import INVITE_ROUTES
from control_plane.members.schemas import (
    AddMemberBody,
    ChangeRoleBody,
    MemberOut,
    MyOrgOut,
    MyOrgs,
)
from control_plane.members.service import (
    add_member,
    change_role,
    derived_memberships,
    member_out,
    members_page,
    remove_member,
    user_to_add,
)
from control_plane.orgs.access import caller_roles, rank
from control_plane.orgs.guards import OrgAccessDep, needs_role
from control_plane.routing.org_urls import org_url
from control_plane.tokens.org_revocation import revoke_user_in_org
from orgplane_wire.cursors import Page
from orgplane_wire.problems import NotFound

Cursor = Annotated[str | None, QueryParameter(max_length=200)]


@get(
    "/api/v1/orgs/{org_ref:str}/members",
    tags=["members"],
    opt=needs_role("member", to="see its members"),
)
async def list_members(
    access: OrgAccessDep,
    db: DB,
    limit: FromQuery[int] = 50,
    cursor: Cursor = None,
) -> Page[MemberOut]:
    """The org's direct members (any member may look), by email."""
    return await members_page(db, access.org, limit=limit, cursor=cursor)


@post(
    "/api/v1/orgs/{org_ref:str}/members",
    status_code=HTTP_201_CREATED,
    tags=["members"],
    opt=needs_role("admin", to="manage members"),
)
async def add(
    data: JSONBody[AddMemberBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> MemberOut:
    """Add an existing user with a role (org admins; the owner role only by owners)."""
    user = await user_to_add(db, email=data.email, user_id=data.user_id)
    membership = await add_member(
        db, principal=actor.principal, access=access, user=user, role=data.role, ip=actor.ip
    )
    return member_out(membership, user)


@patch(
    "/api/v1/orgs/{org_ref:str}/members/{user_id:str}",
    tags=["members"],
    opt=needs_role("admin", to="manage members"),
)
async def update_role(
    user_id: FromPath[str],
    data: JSONBody[ChangeRoleBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> MemberOut:
    """Change a member's role; the last owner stays, nobody raises their own role."""
    derived = await derived_memberships(db, user_id=user_id, org_id=access.org.id)
    membership = await change_role(
        db,
        principal=actor.principal,
        access=access,
        user_id=user_id,
        role=data.role,
        ip=actor.ip,
    )
    user = await db.get(User, user_id)
    if user is None:  # only if the user row vanished in between
        raise NotFound("That user is not a member of this org.", code="member_not_found")
    # Tokens carry the role: the old one must not outlive the change (nor, below admin, the
    # memberships that derived from it).
    also = [m.org_id for m in derived] if rank(data.role) < rank("admin") else []
    await revoke_user_in_org(runtime, db, org_id=access.org.id, user_id=user_id, also=also)
    return member_out(membership, user)


@delete(
    "/api/v1/orgs/{org_ref:str}/members/{user_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    tags=["members"],
)
async def remove(
    user_id: FromPath[str],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> None:
    """Remove a member (org admins), or leave the org (oneself)."""
    derived = await derived_memberships(db, user_id=user_id, org_id=access.org.id)
    await remove_member(db, principal=actor.principal, access=access, user_id=user_id, ip=actor.ip)
    also = [m.org_id for m in derived]
    await revoke_user_in_org(runtime, db, org_id=access.org.id, user_id=user_id, also=also)


@get("/api/v1/me/orgs", tags=["members"])
async def my_orgs(principal: Caller, db: DB, runtime: RuntimeDep) -> MyOrgs:
    """Every live org the caller belongs to or manages from a parent, with their role and the
    URL of its instance."""
    roles = await caller_roles(db, principal.user)
    orgs = (
        await db.exec(select(Org).where(col(Org.id).in_(list(roles))).order_by(col(Org.slug)))
    ).all()
    return MyOrgs(
        [
            MyOrgOut(
                id=o.id,
                slug=o.slug,
                name=o.name,
                role=roles[o.id],
                phase=o.phase,
                parent_id=o.parent_id,
                suspended=o.suspended,
                url=org_url(runtime.settings, o.slug),
            )
            for o in orgs
        ]
    )


ROUTES = [list_members, add, update_role, remove, my_orgs, *INVITE_ROUTES]
