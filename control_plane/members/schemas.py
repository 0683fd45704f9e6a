"""Request and response bodies of the memberships and invites API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from control_plane.users.schemas import Email, Strict

Role = Literal["owner", "admin", "member"]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class AddMemberBody(Strict):
    """Add an existing user, named by ``email`` or ``user_id`` (exactly one)."""

    role: Role = "member"
    email: Email | None = None
    user_id: UserId | None = None


class ChangeRoleBody(Strict):
    role: Role


class MemberOut(msgspec.Struct):
    org_id: str
    user_id: str
    email: str
    name: str
    role: str
    created_at: datetime


class MyOrgOut(msgspec.Struct):
    """An org in the caller's switcher: their role (direct, or ``admin`` from a parent)."""

    id: str
    slug: str
    name: str
    role: str
    phase: str
    parent_id: str | None
    suspended: bool
    #: Where the org's instance is reached (``{scheme}://{slug}.{base_domain}[:port]/``).
    url: str = ""


class MyOrgs(msgspec.Struct):
    items: list[MyOrgOut]


class CreateInviteBody(Strict):
    email: Email
    role: Role = "member"


class InviteOut(msgspec.Struct):
    """An invite; ``status`` is pending, accepted, revoked or expired. Never the token."""

    id: str
    org_id: str
    email: str
    role: str
    status: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class InviteWithToken(InviteOut):
    """The answer of create and resend: the only time the plaintext token is shown."""

    token: str = ""
    #: The invite link was queued for the invitee by email (False: the platform sends no
    #: email; pass the token on yourself).
    mailed: bool = False


class AcceptInviteBody(Strict):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class AcceptedInvite(msgspec.Struct):
    org_id: str
    org_slug: str
    role: str
