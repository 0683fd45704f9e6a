"""Who may see and do what in an org.

* A user's role in an org is their membership's role, raised to ``admin`` when they are an
  admin or owner of an ancestor (admins of a parent manage its children).
* An org the caller has no role in, and that they cannot see as a platform admin, answers
  404 ``org_not_found`` exactly like an org that does not exist.
* Platform admins see every live org and act with an owner's rights.
* An org is *governed* (plan, features, limits, suspension) by platform admins and by the
  admins of its ancestors, never by its own members: an owner cannot raise their own quota.
* **The staff gate.** In an org with ``require_access_approval``, a platform admin acts with
  staff rights only while an approved, unexpired access request of theirs exists; without one
  they act with their own role, if any (``OrgAccess.gated``), and anything that needs more
  answers 403 ``approval_required``. The org stays visible (its registry row, the access-request
  endpoints), so staff can ask.
* A platform admin acting without a role of their own is marked on the session
  (``audit_trail.mark_staff``), and every audit event of theirs recorded for that org in the
  same session says so (``detail.staff``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import mark_staff
from control_plane.auth import Principal
from control_plane.db.models import AccessRequest, Membership, Org, User, utcnow
from control_plane.logs import bind_request
from control_plane.orgs.hierarchy import ancestors, descendant_ids, is_live, live_orgs
from orgplane_wire.problems import Forbidden, NotFound

ROLE_RANK: Final = {"member": 1, "admin": 2, "owner": 3}
ROLES: Final = tuple(ROLE_RANK)


def rank(role: str | None) -> int:
    """Order of roles (0 for none), for "at least" comparisons."""
    return ROLE_RANK.get(role or "", 0)


async def approved_request(
    db: AsyncSession, *, org_id: str, staff_id: str, now: datetime | None = None
) -> AccessRequest | None:
    """The staff member's approval for the org that is still valid at ``now``, if any."""
    query = (
        select(AccessRequest)
        .where(
            col(AccessRequest.org_id) == org_id,
            col(AccessRequest.staff_user_id) == staff_id,
            col(AccessRequest.status) == "approved",
            col(AccessRequest.expires_at) > (now or utcnow()),
        )
        .order_by(col(AccessRequest.expires_at).desc())
        .limit(1)
    )
    return (await db.exec(query)).first()


async def _direct_roles(db: AsyncSession, user_id: str, org_ids: list[str]) -> dict[str, str]:
    query = select(Membership.org_id, Membership.role).where(
        col(Membership.user_id) == user_id, col(Membership.org_id).in_(org_ids)
    )
    return dict((await db.exec(query)).all())


async def org_role(db: AsyncSession, user: User, org: Org) -> str | None:
    """The user's role in ``org``: direct membership, or ``admin`` inherited from an ancestor."""
    chain = await ancestors(db, org)
    roles = await _direct_roles(db, user.id, [org.id, *(a.id for a in chain)])
    direct = roles.get(org.id)
    if rank(direct) < rank("admin") and any(rank(roles.get(a.id)) >= rank("admin") for a in chain):
        return "admin"
    return direct


async def admin_source(db: AsyncSession, user: User, org: Org) -> str | None:
    """The org whose direct admin (or owner) membership gives ``user`` admin rights in
    ``org``: ``org`` itself or the nearest such ancestor; None when no membership does."""
    chain = [org, *await ancestors(db, org)]
    roles = await _direct_roles(db, user.id, [o.id for o in chain])
    return next((o.id for o in chain if rank(roles.get(o.id)) >= rank("admin")), None)


async def governs(db: AsyncSession, principal: Principal, org: Org) -> bool:
    """Platform admins and admins or owners of an ancestor govern ``org``."""
    if principal.is_platform_admin:
        return True
    chain = await ancestors(db, org)
    roles = await _direct_roles(db, principal.user.id, [a.id for a in chain])
    return any(rank(role) >= rank("admin") for role in roles.values())


async def caller_roles(db: AsyncSession, user: User) -> dict[str, str]:
    """The user's effective role in every live org they belong to or manage from above."""
    query = (
        select(Membership.org_id, Membership.role)
        .join(Org, col(Org.id) == col(Membership.org_id))
        .where(col(Membership.user_id) == user.id, live_orgs())
    )
    roles = dict((await db.exec(query)).all())
    managed = [org_id for org_id, role in roles.items() if rank(role) >= rank("admin")]
    for org_id in await descendant_ids(db, managed):
        if rank(roles.get(org_id)) < rank("admin"):
            roles[org_id] = "admin"
    return roles


@dataclass(frozen=True)
class OrgAccess:
    """A visible org and what the caller is in it.

    ``staff``: the caller is a platform admin. ``gated``: the org requires approved staff
    access and the caller has no valid approval, so staff rights do not apply here.
    """

    org: Org
    role: str | None
    staff: bool
    gated: bool = False

    @property
    def staff_rights(self) -> bool:
        """The caller may use staff rights (act as an owner) in this org."""
        return self.staff and not self.gated

    def has(self, minimum: str) -> bool:
        """The caller acts with at least ``minimum`` (platform admins act as owners, unless
        the staff gate holds them back)."""
        return self.staff_rights or rank(self.role) >= rank(minimum)

    def require(self, minimum: str, *, to: str) -> None:
        """403 ``{minimum}_required`` unless :meth:`has` (the org is visible, so 403 leaks
        nothing); 403 ``approval_required`` when only the staff gate is in the way."""
        if self.has(minimum):
            return
        if self.staff:
            raise Forbidden(
                f"This org requires an approved access request to {to}: file one with "
                f"POST /api/v1/orgs/{self.org.id}/access-requests and ask an owner to approve it.",
                code="approval_required",
            )
        raise Forbidden(
            f"You need the {minimum} role in this org to {to}.", code=f"{minimum}_required"
        )


async def find_live_org(db: AsyncSession, ref: str) -> Org | None:
    """The live org whose id or slug is ``ref`` (slugs cannot have the shape of an id)."""
    if "\x00" in ref:  # no org has one, and PostgreSQL would refuse to compare it
        return None
    org = await db.get(Org, ref) if len(ref) == 32 else None
    if org is None:
        org = (await db.exec(select(Org).where(col(Org.slug) == ref.lower()))).first()
    return org if org is not None and is_live(org) else None


def org_not_found() -> NotFound:
    """The one answer for "absent" and "not yours"."""
    return NotFound("No such organization.", code="org_not_found")


async def org_access(db: AsyncSession, principal: Principal, ref: str) -> OrgAccess:
    """The org ``ref`` (id or slug) as the caller sees it, or 404 ``org_not_found``."""
    org = await find_live_org(db, ref)
    if org is None:
        raise org_not_found()
    role = await org_role(db, principal.user, org)
    if role is None and not principal.is_platform_admin:
        raise org_not_found()
    bind_request(org_id=org.id)
    gated, approval_id = False, ""
    if principal.is_platform_admin and org.require_access_approval:
        approval = await approved_request(db, org_id=org.id, staff_id=principal.user.id)
        gated, approval_id = approval is None, approval.id if approval else ""
    if principal.is_platform_admin and role is None and not gated:
        mark_staff(db, org_id=org.id, staff_id=principal.user.id, approval_id=approval_id or None)
    return OrgAccess(org=org, role=role, staff=principal.is_platform_admin, gated=gated)


async def visible_org(db: AsyncSession, principal: Principal, ref: str) -> Org:
    """The org ``ref`` (id or slug) if the caller may see it, else 404 ``org_not_found``."""
    return (await org_access(db, principal, ref)).org
