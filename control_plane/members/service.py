"""Membership rules: who may add, change and remove members, and the invariants kept.

* Org admins (and owners, admins of a parent, platform admins) manage members; only owners
  (and platform admins) grant the owner role or change or remove an owner.
* Nobody raises their own role (403 ``self_promotion``); anyone may leave.
* An org always keeps at least one owner (409 ``last_owner``).
* An org holds at most its ``max_members`` limit (409 ``member_limit_reached``).
* A membership derived from an admin role elsewhere (``via_org_id``: the owner of an org an
  admin of its parent created) ends when that role does: removing the user from the org it
  came from, or lowering their role there below admin, removes it (and what derives from it
  in turn), even when it was the child's last owner; the child's ancestors' admins still
  manage it.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.db.models import Membership, Org, User
from control_plane.members.schemas import MemberOut
from control_plane.members.staff_rules import check_not_self, check_staff_grant
from control_plane.orgs.access import OrgAccess, rank
from control_plane.orgs.hierarchy import effective_limits
from control_plane.users.service import find_by_email, require_verified
from orgplane_wire.cursors import Page, check_limit, decode_cursor, encode_cursor
from orgplane_wire.problems import BadRequest, Conflict, Forbidden, NotFound


def member_out(membership: Membership, user: User) -> MemberOut:
    """The API view of a membership."""
    return MemberOut(
        org_id=membership.org_id,
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        created_at=membership.created_at,
    )


async def members_page(
    db: AsyncSession, org: Org, *, limit: int, cursor: str | None
) -> Page[MemberOut]:
    """The org's direct members by email, keyset-paginated."""
    check_limit(limit)
    query = (
        select(Membership, User)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(col(Membership.org_id) == org.id)
    )
    if cursor:
        email, user_id = decode_cursor(cursor, 2)
        query = query.where(
            (col(User.email) > email) | ((col(User.email) == email) & (col(User.id) > user_id))
        )
    rows = list(await db.exec(query.order_by(col(User.email), col(User.id)).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    nxt = encode_cursor(rows[-1][1].email, rows[-1][1].id) if more else None
    return Page([member_out(m, u) for m, u in rows], nxt)


async def membership_of(db: AsyncSession, org_id: str, user_id: str) -> Membership | None:
    """The user's direct membership in the org, if any."""
    query = select(Membership).where(
        col(Membership.org_id) == org_id, col(Membership.user_id) == user_id
    )
    return (await db.exec(query)).first()


async def check_capacity(db: AsyncSession, org: Org) -> None:
    """409 ``member_limit_reached`` when the org holds its ``max_members`` already."""
    cap = (await effective_limits(db, org)).get("max_members")
    count = (
        await db.exec(
            select(func.count()).select_from(Membership).where(col(Membership.org_id) == org.id)
        )
    ).one()
    if cap is not None and count >= cap:
        raise Conflict(
            f"This org has reached its limit of {cap} members.",
            code="member_limit_reached",
            limit="max_members",
        )


def check_grant(access: OrgAccess, principal: Principal, *, user_id: str, role: str) -> None:
    """The caller may give ``role`` to ``user_id`` in this org, or 403."""
    access.require("admin", to="manage members")
    if user_id == principal.user.id and rank(role) > rank(access.role):
        raise Forbidden("Nobody can raise their own role.", code="self_promotion")
    if role == "owner" and not access.has("owner"):
        raise Forbidden("Only owners can grant the owner role.", code="owner_required")


async def _keep_an_owner(db: AsyncSession, membership: Membership) -> None:
    if membership.role != "owner":
        return
    # Lock the owner rows (PostgreSQL) so two owners demoting each other cannot both win.
    owners = (
        await db.exec(
            select(Membership.id)
            .where(col(Membership.org_id) == membership.org_id, col(Membership.role) == "owner")
            .with_for_update()
        )
    ).all()
    if len(owners) <= 1:
        raise Conflict("An org must keep at least one owner.", code="last_owner")


async def add_member(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, user: User, role: str, ip: str
) -> Membership:
    """Make ``user`` a member with ``role``; 409 ``already_member``."""
    access.require("admin", to="manage members")
    await check_staff_grant(db, access=access, principal=principal, user=user, email=user.email)
    check_grant(access, principal, user_id=user.id, role=role)
    if await membership_of(db, access.org.id, user.id):
        raise Conflict("That user is a member already.", code="already_member")
    check_not_self(principal, user=user, email=user.email)
    require_verified(user)
    await check_capacity(db, access.org)
    membership = Membership(user_id=user.id, org_id=access.org.id, role=role)
    db.add(membership)
    record(
        db,
        action="member.add",
        actor=principal.user,
        org_id=access.org.id,
        target_type="user",
        target_id=user.id,
        ip=ip,
        role=role,
    )
    await db.commit()
    return membership


async def _target(db: AsyncSession, access: OrgAccess, user_id: str) -> Membership:
    membership = await membership_of(db, access.org.id, user_id)
    if membership is None:
        raise NotFound("That user is not a member of this org.", code="member_not_found")
    return membership


async def change_role(
    db: AsyncSession,
    *,
    principal: Principal,
    access: OrgAccess,
    user_id: str,
    role: str,
    ip: str,
) -> Membership:
    """Give a member another role, under the rules above."""
    membership = await _target(db, access, user_id)
    check_grant(access, principal, user_id=user_id, role=role)
    if membership.role == "owner" and not access.has("owner"):
        raise Forbidden("Only owners can change an owner's role.", code="owner_required")
    if rank(role) > rank(membership.role):
        user = await db.get(User, user_id)
        email = user.email if user else ""
        await check_staff_grant(db, access=access, principal=principal, user=user, email=email)
    if membership.role != role:
        if role != "owner":
            await _keep_an_owner(db, membership)
        old, membership.role = membership.role, role
        db.add(membership)
        if rank(role) < rank("admin"):
            await drop_derived(
                db, principal=principal, user_id=user_id, org_id=access.org.id, ip=ip
            )
        record(
            db,
            action="member.update",
            actor=principal.user,
            org_id=access.org.id,
            target_type="user",
            target_id=user_id,
            ip=ip,
            old_role=old,
            role=role,
        )
        await db.commit()
    return membership


async def remove_member(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, user_id: str, ip: str
) -> None:
    """Remove a member (admins), or leave (anyone, themselves)."""
    membership = await _target(db, access, user_id)
    if user_id != principal.user.id:
        access.require("admin", to="remove members")
        if membership.role == "owner" and not access.has("owner"):
            raise Forbidden("Only owners can remove an owner.", code="owner_required")
    await _keep_an_owner(db, membership)
    await db.delete(membership)
    await drop_derived(db, principal=principal, user_id=user_id, org_id=access.org.id, ip=ip)
    record(
        db,
        action="member.remove",
        actor=principal.user,
        org_id=access.org.id,
        target_type="user",
        target_id=user_id,
        ip=ip,
        role=membership.role,
    )
    await db.commit()


async def derived_memberships(db: AsyncSession, *, user_id: str, org_id: str) -> list[Membership]:
    """The user's memberships derived from their admin role in ``org_id``, and those derived
    from them in turn (each org once)."""
    found: list[Membership] = []
    frontier, seen = [org_id], {org_id}
    while frontier:
        query = select(Membership).where(
            col(Membership.user_id) == user_id, col(Membership.via_org_id).in_(frontier)
        )
        derived = [m for m in (await db.exec(query)).all() if m.org_id not in seen]
        found += derived
        frontier = [m.org_id for m in derived]
        seen.update(frontier)
    return found


async def drop_derived(
    db: AsyncSession, *, principal: Principal, user_id: str, org_id: str, ip: str
) -> None:
    """Remove :func:`derived_memberships`, audited (``derived_from``), not committed. The
    caller revokes the user's tokens in those orgs too (they may lie outside ``org_id``'s
    subtree, if moved since)."""
    for membership in await derived_memberships(db, user_id=user_id, org_id=org_id):
        await db.delete(membership)
        record(db, action="member.remove", actor=principal.user, org_id=membership.org_id,
               target_type="user", target_id=user_id, ip=ip, role=membership.role,
               derived_from=membership.via_org_id)  # fmt: skip


async def user_to_add(db: AsyncSession, *, email: str | None, user_id: str | None) -> User:
    """The active user a POST names by email or id, or 400 / 404 ``user_not_found``."""
    if (email is None) == (user_id is None):
        raise BadRequest(
            "Name the user by exactly one of email or user_id.", code="user_required", field="email"
        )
    user = await find_by_email(db, email) if email is not None else await db.get(User, user_id)
    if user is None or user.disabled:
        raise NotFound("No active user matches.", code="user_not_found")
    return user
