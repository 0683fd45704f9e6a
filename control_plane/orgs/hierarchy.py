"""The org hierarchy: ancestors, inherited features, carved-out limits, cycles and depth.

The rules (also in ``docs/hierarchy.md``):

* Features: the org's plan defaults, overridden by each ancestor's overrides from the root
  down, overridden by the org's own overrides; the features catalogue's access rules
  (disabled, exclusive users and orgs, plans) come first (:mod:`control_plane.features.rules`).
* Limits: an org's *quota* is its plan's limits overridden by its own limit overrides. The
  quotas of a parent's live children must fit in the parent's limits, key by key
  (409 ``quota_exceeded``). An org's effective limits are its quota capped by every ancestor's.
* A tree is at most :data:`MAX_DEPTH` levels deep (400 ``hierarchy_too_deep``); an org can
  never be its own ancestor (409 ``hierarchy_cycle``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Feature, Org
from control_plane.db.phases import DesiredState
from control_plane.features.plans import DEFAULT_PLAN, PLANS
from control_plane.features.rules import Subject, enabled_features, load_catalogue
from orgplane_wire.problems import BadRequest, Conflict

#: Levels in one tree, the root included.
MAX_DEPTH = 5


def live_orgs() -> ColumnElement[bool]:
    """SQL condition: the org is not deleted (deleted orgs vanish from every answer)."""
    return and_(col(Org.desired_state) != DesiredState.DELETED, col(Org.deleted_at).is_(None))


def is_live(org: Org) -> bool:
    """The org is not deleted (nor finalized for deletion)."""
    return org.desired_state != DesiredState.DELETED and org.deleted_at is None


async def ancestors(db: AsyncSession, org: Org) -> list[Org]:
    """The org's ancestors, its parent first and the root last.

    Bounded: a corrupted parent chain (a cycle written behind the API's back) ends the walk
    instead of looping.
    """
    chain: list[Org] = []
    seen = {org.id}
    parent_id = org.parent_id
    while parent_id and parent_id not in seen and len(chain) < MAX_DEPTH * 2:
        parent = await db.get(Org, parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_id
    return chain


async def ancestor_hold(db: AsyncSession, org: Org) -> str:
    """Why an ancestor holds ``org`` back ("" when none does): a suspended ancestor suspends
    its descendants, and one pending deletion stops them too (token exchange refuses them, the
    reconciler stops their instances). Costs the walk up the parents; nothing for a root org."""
    if org.parent_id is None:
        return ""
    for ancestor in await ancestors(db, org):
        if ancestor.suspended:
            return "a parent org is suspended"
        if ancestor.delete_after is not None:
            return "a parent org is pending deletion"
    return ""


def own_quota(org: Org) -> dict[str, int]:
    """The org's plan limits overridden by its own limit overrides (ancestors not applied)."""
    plan = PLANS.get(org.plan) or PLANS[DEFAULT_PLAN]
    return {**plan.limits, **org.limits}


async def effective_limits(db: AsyncSession, org: Org) -> dict[str, int]:
    """The limits the org's instance enforces: its quota, capped by every ancestor's."""
    limits = own_quota(org)
    for ancestor in await ancestors(db, org):
        for key, cap in own_quota(ancestor).items():
            limits[key] = min(limits.get(key, cap), cap)
    return limits


async def feature_subject(
    db: AsyncSession, org: Org, *, user_id: str | None = None
) -> tuple[Subject, list[Org]]:
    """Who the features of ``org`` are evaluated for (``user_id`` None: any member), and the
    org's ancestors (parent first). Costs the walk up the ancestors (none for a root org)."""
    chain = await ancestors(db, org)
    overrides: dict[str, bool] = {}
    for ancestor in reversed(chain):
        overrides.update(ancestor.features)
    overrides.update(org.features)
    subject = Subject(
        user_id=user_id,
        org_ids=[org.id, *(a.id for a in chain)],
        plan=PLANS.get(org.plan) or PLANS[DEFAULT_PLAN],
        overrides=overrides,
    )
    return subject, chain


async def effective_features(
    db: AsyncSession,
    org: Org,
    *,
    user_id: str | None = None,
    catalogue: dict[str, Feature] | None = None,
) -> list[str]:
    """Sorted keys of the org's enabled features for ``user_id`` (None: any member).

    The catalogue's access rules (:mod:`control_plane.features.rules`) over the plan defaults
    and the overrides of the ancestors from the root down, then the org's own. Costs one
    query for the catalogue (none when ``catalogue`` is given: a list loads it once for its
    page) plus the walk up the ancestors (none for a root org).
    """
    subject, _ = await feature_subject(db, org, user_id=user_id)
    return enabled_features(
        catalogue if catalogue is not None else await load_catalogue(db), subject
    )


async def live_children(db: AsyncSession, parent_id: str) -> list[Org]:
    """The parent's children that are not deleted."""
    query = select(Org).where(col(Org.parent_id) == parent_id, live_orgs())
    return list((await db.exec(query)).all())


async def descendant_ids(db: AsyncSession, root_ids: Iterable[str]) -> set[str]:
    """Ids of every live org below any of ``root_ids`` (the roots themselves excluded)."""
    roots = set(root_ids)
    found: set[str] = set()
    frontier = set(roots)
    for _ in range(MAX_DEPTH * 2):
        if not frontier:
            break
        query = select(Org.id).where(col(Org.parent_id).in_(frontier), live_orgs())
        new = set((await db.exec(query)).all()) - found - roots
        found |= new
        frontier = new
    return found


async def _subtree_height(db: AsyncSession, org: Org) -> int:
    height, frontier = 1, {org.id}
    while frontier and height <= MAX_DEPTH:
        query = select(Org.id).where(col(Org.parent_id).in_(frontier), live_orgs())
        frontier = set((await db.exec(query)).all())
        height += 1 if frontier else 0
    return height


async def check_parent_link(db: AsyncSession, *, parent: Org, child: Org | None) -> None:
    """Refuse making ``parent`` the parent of ``child`` (None: a new org) on a cycle or depth.

    409 ``hierarchy_cycle`` when the parent is the child or below it; 400
    ``hierarchy_too_deep`` when the tree would exceed :data:`MAX_DEPTH` levels.
    """
    chain = await ancestors(db, parent)
    if child is not None and (parent.id == child.id or child.id in {a.id for a in chain}):
        raise Conflict(
            "An org cannot be placed under itself or one of its descendants.",
            code="hierarchy_cycle",
            field="parent_id",
        )
    height = await _subtree_height(db, child) if child is not None else 1
    if len(chain) + 1 + height > MAX_DEPTH:
        raise BadRequest(
            f"The hierarchy would be deeper than {MAX_DEPTH} levels.",
            code="hierarchy_too_deep",
            field="parent_id",
        )


async def check_quota(
    db: AsyncSession,
    parent: Org,
    *,
    child: Org | None = None,
    child_quota: dict[str, int] | None = None,
    parent_limits: dict[str, int] | None = None,
) -> None:
    """409 ``quota_exceeded`` unless the quotas of ``parent``'s children fit in its limits.

    ``child`` / ``child_quota``: a child being added, moved or changed, with its new quota
    (it replaces the child's stored quota in the sum). ``parent_limits``: the parent's new
    effective limits, when the parent itself is changing.
    """
    capacity = parent_limits if parent_limits is not None else await effective_limits(db, parent)
    quotas = [
        own_quota(c)
        for c in await live_children(db, parent.id)
        if child is None or c.id != child.id
    ]
    if child_quota is not None:
        quotas.append(child_quota)
    for key, cap in sorted(capacity.items()):
        # A child without a value for a key is unlimited there, which no finite parent fits.
        total = sum(q.get(key, cap + 1) for q in quotas)
        if total > cap:
            raise Conflict(
                f"Children's {key} would total {total}, above the parent's {cap}.",
                code="quota_exceeded",
                limit=key,
                parent_limit=cap,
                requested_total=total,
            )
