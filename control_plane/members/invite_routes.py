"""Invites API: create, list, revoke, resend (org admins) and accept (the invited user)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from control_plane.actor import ActorDep
from control_plane.deps import DB, RuntimeDep
from control_plane.members.invites import (
    accept_invite,
    create_invite,
    invite_out,
    invite_with_token,
    invites_page,
    resend_invite,
    revoke_invite,
)
from control_plane.members.schemas import (
    AcceptedInvite,
    AcceptInviteBody,
    CreateInviteBody,
    InviteOut,
    InviteWithToken,
)
from control_plane.orgs.guards import OrgAccessDep, needs_role
from orgplane_wire.cursors import Page

Cursor = Annotated[str | None, QueryParameter(max_length=200)]
Status = Literal["pending", "accepted", "revoked", "expired"]


@post("/api/v1/orgs/{org_ref:str}/invites", status_code=HTTP_201_CREATED, tags=["invites"])
async def create(
    data: JSONBody[CreateInviteBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> InviteWithToken:
    """Invite an email with a role; the answer carries the token, shown this once only."""
    invite, token = await create_invite(
        db,
        principal=actor.principal,
        access=access,
        email=data.email,
        role=data.role,
        ttl_days=runtime.settings.security.invite_ttl_days,
        ip=actor.ip,
        mail=runtime.settings,
    )
    return invite_with_token(invite, token, mailed=runtime.settings.mail.enabled)


@get(
    "/api/v1/orgs/{org_ref:str}/invites",
    tags=["invites"],
    opt=needs_role("admin", to="see invites"),
)
async def list_invites(
    access: OrgAccessDep,
    db: DB,
    limit: FromQuery[int] = 50,
    cursor: Cursor = None,
    status: FromQuery[Status | None] = None,
) -> Page[InviteOut]:
    """The org's invites (org admins), by email; ``?status=`` filters."""
    return await invites_page(db, access.org, limit=limit, cursor=cursor, status=status)


@post(
    "/api/v1/orgs/{org_ref:str}/invites/{invite_id:str}/revoke",
    status_code=HTTP_200_OK,
    tags=["invites"],
)
async def revoke(
    invite_id: FromPath[str],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> InviteOut:
    """Revoke an invite that was not accepted; its token stops working."""
    invite = await revoke_invite(
        db, principal=actor.principal, access=access, invite_id=invite_id, ip=actor.ip
    )
    return invite_out(invite)


@post(
    "/api/v1/orgs/{org_ref:str}/invites/{invite_id:str}/resend",
    status_code=HTTP_200_OK,
    tags=["invites"],
)
async def resend(
    invite_id: FromPath[str],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> InviteWithToken:
    """A new token (shown once) and a new expiry; the previous token stops working."""
    invite, token = await resend_invite(
        db,
        principal=actor.principal,
        access=access,
        invite_id=invite_id,
        ttl_days=runtime.settings.security.invite_ttl_days,
        ip=actor.ip,
        mail=runtime.settings,
    )
    return invite_with_token(invite, token, mailed=runtime.settings.mail.enabled)


@post("/api/v1/invites/accept", status_code=HTTP_200_OK, tags=["invites"])
async def accept(
    data: JSONBody[AcceptInviteBody],
    actor: ActorDep,
    db: DB,
) -> AcceptedInvite:
    """Accept an invite sent to the caller's email; the token is spent."""
    org, membership = await accept_invite(db, user=actor.user, token=data.token, ip=actor.ip)
    await db.commit()
    return AcceptedInvite(org_id=org.id, org_slug=org.slug, role=membership.role)


INVITE_ROUTES = [create, list_invites, revoke, resend, accept]
