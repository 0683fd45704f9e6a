"""Invites: an org admin invites an email with a role; the invited user accepts once.

The token is shown only in the answer that created it (or resent it) and stored as a SHA-256
hash. Acceptance is a conditional UPDATE (``accepted_at IS NULL``), so a token is spent exactly
once however many requests race with it. Failures have their own codes:
400 ``invalid_invite`` (unknown token), 403 ``invite_email_mismatch``, 410 ``invite_used`` /
``invite_revoked`` / ``invite_expired``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.branding.resolve import display_name
from control_plane.db.models import Invite, Membership, Org, User, utcnow
from control_plane.mail.outbox import enqueue
from control_plane.members.schemas import InviteOut, InviteWithToken
from control_plane.members.service import check_capacity, membership_of
from control_plane.members.staff_rules import (
    check_acceptance,
    check_not_self,
    check_staff_grant,
)
from control_plane.orgs.access import OrgAccess, rank
from control_plane.orgs.hierarchy import is_live
from control_plane.security.secrets import new_secret
from control_plane.settings import Settings
from control_plane.users.service import checked_email, find_by_email, require_verified
from orgplane_wire.cursors import Page, check_limit, decode_cursor, encode_cursor
from orgplane_wire.problems import BadRequest, Conflict, Forbidden, NotFound, ProblemError
from orgplane_wire.secret_box import hash_secret

INVITE_PREFIX = "opv"


class Gone(ProblemError):
    status, code, title = 410, "gone", "Gone"


def invite_status(invite: Invite, now: datetime | None = None) -> str:
    """pending, accepted, revoked or expired."""
    if invite.accepted_at is not None:
        return "accepted"
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at <= (now or utcnow()):
        return "expired"
    return "pending"


def _fields(invite: Invite) -> dict[str, Any]:
    return {
        "id": invite.id,
        "org_id": invite.org_id,
        "email": invite.email,
        "role": invite.role,
        "status": invite_status(invite),
        "invited_by": invite.invited_by,
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
        "accepted_at": invite.accepted_at if invite.accepted_at else None,
        "revoked_at": invite.revoked_at if invite.revoked_at else None,
    }


def invite_out(invite: Invite) -> InviteOut:
    """The API view of an invite (never its token)."""
    return InviteOut(**_fields(invite))


def invite_with_token(invite: Invite, token: str, *, mailed: bool = False) -> InviteWithToken:
    """The API view of an invite just made or resent, with its plaintext token."""
    return InviteWithToken(**_fields(invite), token=token, mailed=mailed)


def invite_link(settings: Settings, token: str) -> str:
    """The UI page an invite token opens (in the fragment: never sent to a server)."""
    return f"{settings.server.base_url}/ui/invites/accept#token={token}"


async def _mail_invite(
    db: AsyncSession,
    settings: Settings | None,
    principal: Principal,
    invite: Invite,
    org: Org,
    token: str,
) -> None:
    if settings is None or not settings.mail.enabled:
        return
    enqueue(
        db,
        settings,
        kind="invite",
        to=invite.email,
        inviter=principal.user.name or principal.user.email,
        org_name=await display_name(db, org),
        role=invite.role,
        link=invite_link(settings, token),
        expires_at=invite.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
    )


def _check_inviter(access: OrgAccess, role: str) -> None:
    access.require("admin", to="manage invites")
    if role == "owner" and not access.has("owner"):
        raise Forbidden("Only owners can invite owners.", code="owner_required")


def _new_token(invite: Invite, ttl_days: int) -> str:
    token = new_secret(INVITE_PREFIX)
    invite.token_hash = hash_secret(token)
    invite.expires_at = utcnow() + timedelta(days=ttl_days)
    return token


async def create_invite(
    db: AsyncSession,
    *,
    principal: Principal,
    access: OrgAccess,
    email: str,
    role: str,
    ttl_days: int,
    ip: str,
    mail: Settings | None = None,
) -> tuple[Invite, str]:
    """A new invite and its plaintext token; 409 ``already_member`` / ``invite_pending``.
    With ``mail`` settings of a platform that sends email, the invite is mailed too."""
    _check_inviter(access, role)
    email, org = checked_email(email), access.org
    existing = await find_by_email(db, email)
    await check_staff_grant(db, access=access, principal=principal, user=existing, email=email)
    if existing is not None and await membership_of(db, org.id, existing.id):
        raise Conflict("That user is a member already.", code="already_member", field="email")
    check_not_self(principal, user=existing, email=email)
    pending = (
        await db.exec(
            select(Invite).where(
                col(Invite.org_id) == org.id,
                col(Invite.email) == email,
                col(Invite.accepted_at).is_(None),
                col(Invite.revoked_at).is_(None),
                col(Invite.expires_at) > utcnow(),
            )
        )
    ).first()
    if pending is not None:
        raise Conflict(
            "An invite for that email is pending; resend it instead.",
            code="invite_pending",
            invite_id=pending.id,
        )
    invite = Invite(
        org_id=org.id, email=email, role=role, invited_by=principal.user.id, token_hash=""
    )
    token = _new_token(invite, ttl_days)
    db.add(invite)
    record(
        db,
        action="invite.create",
        actor=principal.user,
        org_id=org.id,
        target_type="invite",
        target_id=invite.id,
        ip=ip,
        email=email,
        role=role,
    )
    await _mail_invite(db, mail, principal, invite, org, token)
    await db.commit()
    return invite, token


async def invites_page(
    db: AsyncSession, org: Org, *, limit: int, cursor: str | None, status: str | None
) -> Page[InviteOut]:
    """The org's invites by email, keyset-paginated; ``status`` filters after loading."""
    check_limit(limit)
    query = select(Invite).where(col(Invite.org_id) == org.id)
    if cursor:
        email, invite_id = decode_cursor(cursor, 2)
        query = query.where(
            (col(Invite.email) > email)
            | ((col(Invite.email) == email) & (col(Invite.id) > invite_id))
        )
    rows = list(
        (await db.exec(query.order_by(col(Invite.email), col(Invite.id)).limit(limit + 1))).all()
    )
    more, rows = len(rows) > limit, rows[:limit]
    nxt = encode_cursor(rows[-1].email, rows[-1].id) if more else None
    items = [invite_out(i) for i in rows if status is None or invite_status(i) == status]
    return Page(items, nxt)


async def _pending_invite(db: AsyncSession, access: OrgAccess, invite_id: str) -> Invite:
    invite = await db.get(Invite, invite_id)
    if invite is None or invite.org_id != access.org.id:
        raise NotFound("No such invite.", code="invite_not_found")
    _check_inviter(access, invite.role)
    status = invite_status(invite)
    if status in ("accepted", "revoked"):
        raise Conflict(f"This invite is {status}.", code="invite_not_pending")
    return invite


async def revoke_invite(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, invite_id: str, ip: str
) -> Invite:
    """Revoke a pending (or expired) invite; its token stops working."""
    invite = await _pending_invite(db, access, invite_id)
    invite.revoked_at = utcnow()
    db.add(invite)
    record(
        db,
        action="invite.revoke",
        actor=principal.user,
        org_id=access.org.id,
        target_type="invite",
        target_id=invite.id,
        ip=ip,
    )
    await db.commit()
    return invite


async def resend_invite(
    db: AsyncSession,
    *,
    principal: Principal,
    access: OrgAccess,
    invite_id: str,
    ttl_days: int,
    ip: str,
    mail: Settings | None = None,
) -> tuple[Invite, str]:
    """A new token and a new expiry for a pending (or expired) invite; the old token dies
    (mailed, as by :func:`create_invite`)."""
    invite = await _pending_invite(db, access, invite_id)
    token = _new_token(invite, ttl_days)
    db.add(invite)
    record(
        db,
        action="invite.resend",
        actor=principal.user,
        org_id=access.org.id,
        target_type="invite",
        target_id=invite.id,
        ip=ip,
    )
    await _mail_invite(db, mail, principal, invite, access.org, token)
    await db.commit()
    return invite, token


async def usable_invite(db: AsyncSession, user: User, token: str) -> tuple[Invite, Org]:
    """The invite ``token`` names, if ``user`` may spend it now; else the problem why not."""
    invite = None
    if token.startswith(INVITE_PREFIX + "_") and len(token) <= 200:
        digest = hash_secret(token)
        invite = (await db.exec(select(Invite).where(col(Invite.token_hash) == digest))).first()
    if invite is None:
        raise BadRequest("The invite token is not valid.", code="invalid_invite", field="token")
    if invite.email != user.email:
        raise Forbidden(
            "This invite was sent to another email address.", code="invite_email_mismatch"
        )
    org = await db.get(Org, invite.org_id)
    status = invite_status(invite)
    if org is None or not is_live(org) or status == "revoked":
        raise Gone("This invite was revoked.", code="invite_revoked")
    if status == "accepted":
        raise Gone("This invite was used already.", code="invite_used")
    if status == "expired":
        raise Gone("This invite has expired; ask for a new one.", code="invite_expired")
    return invite, org


async def accept_invite(
    db: AsyncSession, *, user: User, token: str, ip: str
) -> tuple[Org, Membership]:
    """Spend ``token`` for ``user`` and give them the invite's role. Does not commit."""
    invite, org = await usable_invite(db, user, token)
    require_verified(user)
    await check_acceptance(db, org=org, invite=invite, user=user)
    now = utcnow()
    spent = await db.exec(
        update(Invite)
        .where(
            col(Invite.id) == invite.id,
            col(Invite.accepted_at).is_(None),
            col(Invite.revoked_at).is_(None),
            col(Invite.expires_at) > now,
        )
        .values(accepted_at=now)
        # Refresh loaded rows by primary key: evaluating the WHERE in Python would compare
        # SQLite's naive timestamps with aware ones.
        .execution_options(synchronize_session="fetch")
    )
    if spent.rowcount != 1:
        raise Gone("This invite was used already.", code="invite_used")
    membership = await membership_of(db, org.id, user.id)
    if membership is None:
        await check_capacity(db, org)
        membership = Membership(user_id=user.id, org_id=org.id, role=invite.role)
    elif rank(invite.role) > rank(membership.role):
        membership.role = invite.role
    db.add(membership)
    record(
        db,
        action="invite.accept",
        actor=user,
        org_id=org.id,
        target_type="invite",
        target_id=invite.id,
        ip=ip,
        role=membership.role,
    )
    return org, membership
