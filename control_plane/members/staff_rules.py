"""Staff cannot turn support access into membership.

In an org that requires approved staff access (``require_access_approval``), an approval ends;
a membership would not. So, there:

* staff acting without a role of their own (support access) never add, invite or promote
  themselves, another platform admin, or an account they created (``user.create`` in the audit
  log names its creator): 403 ``staff_self_grant``;
* a platform admin never joins by accepting an invite (an owner adds them directly, a decision
  only an owner can take): 403 ``approval_required``; nor does an account whose creator is the
  platform admin who sent the invite: 403 ``staff_self_grant``.

Elsewhere (no approval required) staff enter with a stated reason anyway, so none of this
applies.

And for everyone: **nobody makes themselves a direct member** (403 ``self_grant``), by adding
themselves, inviting their own email or accepting an invite they sent. The only way to act in
an org without being its member is a role inherited from a parent (or staff rights), and it
must end with that: a direct membership made from it would survive removal from the parent.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import Principal
from control_plane.db.models import AuditEvent, Invite, Org, User
from control_plane.orgs.access import OrgAccess
from orgplane_wire.problems import Forbidden


async def creator_of(db: AsyncSession, user_id: str) -> str | None:
    """The id of the platform admin who created the account (None: it signed up itself)."""
    query = select(AuditEvent.actor_id).where(
        col(AuditEvent.action) == "user.create", col(AuditEvent.target_id) == user_id
    )
    return (await db.exec(query.limit(1))).first()


def _self_grant() -> Forbidden:
    return Forbidden(
        "Staff cannot make themselves, another platform admin or an account they created a "
        "member of an org that requires approved staff access.",
        code="staff_self_grant",
    )


async def check_staff_grant(
    db: AsyncSession, *, access: OrgAccess, principal: Principal, user: User | None, email: str
) -> None:
    """403 ``staff_self_grant`` when staff acting on support access would give membership to
    an account they control (``user``, or ``email`` for an invite to an account not made yet)."""
    if not (access.staff and access.role is None and access.org.require_access_approval):
        return
    me = principal.user
    if email.lower() == me.email.lower():
        raise _self_grant()
    if user is None:
        return
    if user.id == me.id or user.is_platform_admin or await creator_of(db, user.id) == me.id:
        raise _self_grant()


def _self_grant_by_anyone() -> Forbidden:
    return Forbidden(
        "Nobody makes themselves a member: a role inherited from a parent org (or staff "
        "rights) ends with it, a membership would not. Ask an admin of this org.",
        code="self_grant",
    )


def check_not_self(principal: Principal, *, user: User | None, email: str) -> None:
    """403 ``self_grant`` when the caller would add or invite themselves."""
    me = principal.user
    if (user is not None and user.id == me.id) or email.lower() == me.email.lower():
        raise _self_grant_by_anyone()


async def check_acceptance(db: AsyncSession, *, org: Org, invite: Invite, user: User) -> None:
    """Refuse an invite that would make staff (or an account staff made for it), or its own
    sender, a member."""
    if invite.invited_by == user.id:
        raise _self_grant_by_anyone()
    if not org.require_access_approval:
        return
    if user.is_platform_admin:
        raise Forbidden(
            "Platform admins do not join this org through invites: it requires approved staff "
            "access. An owner can add you directly.",
            code="approval_required",
        )
    creator = await creator_of(db, user.id)
    if creator is not None and creator == invite.invited_by:
        raise _self_grant()
