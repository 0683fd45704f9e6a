"""Applying claim mapping at a sign-in: the user's provider-managed memberships made to match
the rules (:mod:`control_plane.sso.claims`), each change audited, then the user's org tokens of
every org that changed revoked (a token carries the role).

An add is skipped (audited as a failure) when the org is deleted or at its member limit; the
user still signs in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import Membership, Org, User
from control_plane.db.sso_models import ClaimRule, IdentityProvider
from control_plane.members.service import check_capacity, derived_memberships
from control_plane.runtime import Runtime
from control_plane.sso.claims import Change, granted_roles, plan_changes, source_of
from control_plane.tokens.org_revocation import revoke_user_in_org
from orgplane_wire.problems import ProblemError


async def rules_of(db: AsyncSession, provider_id: str) -> list[ClaimRule]:
    """The provider's rules, oldest first."""
    query = select(ClaimRule).where(col(ClaimRule.provider_id) == provider_id)
    return list(await db.exec(query.order_by(col(ClaimRule.created_at), col(ClaimRule.id))))


async def memberships_of(db: AsyncSession, user_id: str) -> list[Membership]:
    """Every direct membership of the user."""
    return list(await db.exec(select(Membership).where(col(Membership.user_id) == user_id)))


async def preview(
    db: AsyncSession, provider: IdentityProvider, claims: dict[str, Any], user: User | None
) -> list[Change]:
    """What a sign-in with ``claims`` would change for ``user`` (None: a new account). Reads
    only."""
    granted = granted_roles(await rules_of(db, provider.id), claims)
    current = await memberships_of(db, user.id) if user is not None else []
    return plan_changes(granted, current, provider.id)


async def apply_claims(
    runtime: Runtime,
    db: AsyncSession,
    *,
    provider: IdentityProvider,
    user: User,
    claims: dict[str, Any],
    ip: str,
) -> list[Change]:
    """Make the user's memberships managed by ``provider`` match its rules for ``claims``;
    audited, committed, then tokens revoked. Answers what was done."""
    current = {m.org_id: m for m in await memberships_of(db, user.id)}
    changes = plan_changes(
        granted_roles(await rules_of(db, provider.id), claims), current.values(), provider.id
    )
    done: list[Change] = []
    lowered: list[str] = []
    for change in changes:
        membership = current.get(change.org_id)
        audit = {"org_id": change.org_id, "target_type": "user", "target_id": user.id, "ip": ip}
        if change.action == "add":
            refused = await _cannot_add(db, change.org_id)
            if refused:
                record(db, action="member.add", actor=user, outcome="failure", reason=refused,
                       source=source_of(provider.id), **audit)  # fmt: skip
                continue
            db.add(Membership(user_id=user.id, org_id=change.org_id, role=str(change.role),
                              source=source_of(provider.id)))  # fmt: skip
            record(db, action="member.add", actor=user, role=change.role,
                   source=source_of(provider.id), **audit)  # fmt: skip
        elif change.action == "change" and membership is not None:
            membership.role = str(change.role)
            db.add(membership)
            record(db, action="member.update", actor=user, role=change.role,
                   previous_role=change.previous_role, source=source_of(provider.id),
                   **audit)  # fmt: skip
            lowered.append(change.org_id)
        elif change.action == "remove" and membership is not None:
            await db.delete(membership)
            record(db, action="member.remove", actor=user, role=change.previous_role,
                   source=source_of(provider.id), **audit)  # fmt: skip
            lowered.append(change.org_id)
        else:
            continue
        done.append(change)
    demoted = [c.org_id for c in done if c.previous_role == "admin" and c.role != "admin"]
    derived = await _drop_derived(db, user, demoted)
    await db.commit()
    for org_id in lowered:
        also = derived.get(org_id, [])
        await revoke_user_in_org(runtime, db, org_id=org_id, user_id=user.id, also=also)
    return done


async def _cannot_add(db: AsyncSession, org_id: str) -> str:
    """Why a membership of ``org_id`` cannot be added now ("" when it can)."""
    org = await db.get(Org, org_id)
    if org is None or org.deleted_at is not None:
        return "org_deleted"
    try:
        await check_capacity(db, org)
    except ProblemError as exc:
        return exc.code
    return ""


async def _drop_derived(
    db: AsyncSession, user: User, demoted: Sequence[str]
) -> dict[str, list[str]]:
    """Memberships derived from an admin role the sign-in lowered or removed go too (as when
    an admin removes a member); answers {org: [orgs whose derived membership went]}."""
    dropped: dict[str, list[str]] = {}
    for org_id in demoted:
        for derived in await derived_memberships(db, user_id=user.id, org_id=org_id):
            await db.delete(derived)
            record(db, action="member.remove", actor=user, org_id=derived.org_id,
                   target_type="user", target_id=user.id, role=derived.role,
                   derived_from=derived.via_org_id)  # fmt: skip
            dropped.setdefault(org_id, []).append(derived.org_id)
    return dropped
