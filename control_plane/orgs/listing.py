"""Listing and looking up orgs, always limited to what the caller can see."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import ColumnElement, false, func, or_, text, union
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from control_plane.auth import Principal
from control_plane.db.models import Membership, Org
from control_plane.db.phases import OrgPhase
from control_plane.features.plans import plan_named
from control_plane.features.rules import load_catalogue
from control_plane.orgs.access import caller_roles, rank, visible_org
from control_plane.orgs.hierarchy import live_orgs
from control_plane.orgs.schemas import LookupItem, OrgOut
from control_plane.orgs.service import org_out
from control_plane.pagination import after
from orgplane_wire.cursors import Page, check_limit, encode_cursor
from orgplane_wire.problems import BadRequest

#: Phases of the org lifecycle (docs/architecture.md); filters accept only these.
PHASES: Final = frozenset(OrgPhase)
LOOKUP_SIZE: Final = 20
MAX_LOOKUP_IDS: Final = 100


async def _plan_for_the_fragment(db: AsyncSession) -> None:
    """On PostgreSQL, plan this transaction's search for its own fragment.

    The fragment is a bind parameter of a prepared statement, and after five runs PostgreSQL
    may settle on a generic plan made without knowing it: one that walks the slug index and
    tests every org, as it cannot tell that the trigram indexes (migration 0011) find a rare
    fragment's few orgs at once. Measured at 100,000 orgs: the same lookup read 1 org row per
    request in one run and 115,000 in the next (docs/scaling.md)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.exec(text("SET LOCAL plan_cache_mode = force_custom_plan"))  # type: ignore[call-overload]


def _matches(fragment: str) -> ColumnElement[bool]:
    needle = fragment.strip().lower()
    if "\x00" in needle:  # no name holds one; SQLite's LIKE would stop reading at it
        return false()
    return or_(
        func.lower(col(Org.name)).contains(needle, autoescape=True),
        col(Org.slug).contains(needle, autoescape=True),
    )


async def _scope(
    db: AsyncSession, principal: Principal
) -> tuple[SelectOfScalar[Org], dict[str, str]]:
    """Live orgs the caller can see, and the caller's role in each org they have one in."""
    roles = await caller_roles(db, principal.user)
    query = select(Org).where(live_orgs())
    if not principal.is_platform_admin:
        # The direct memberships as a subquery, not as one bind parameter per org (a member of
        # 1,000 orgs would compile and send 1,000 of them on every page); orgs managed from
        # above are the ones ``caller_roles`` raised to admin. Joined, not ``IN (...) OR IN
        # (...)`` in the filter: that walked every org in slug order testing each, so a member
        # of a few orgs among 100,000 made every page read all 100,000 (docs/scaling.md).
        visible: Any = select(col(Membership.org_id).label("id")).where(
            col(Membership.user_id) == principal.user.id
        )
        managed = [org_id for org_id, role in roles.items() if rank(role) >= rank("admin")]
        if managed:
            visible = union(
                visible, select(col(Org.id).label("id")).where(col(Org.id).in_(managed))
            )
        ids = visible.subquery()
        query = query.join(ids, ids.c.id == col(Org.id))
    return query, roles


async def list_orgs(
    db: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    plan: str | None,
    phase: str | None,
    parent_id: str | None,
    q: str | None,
) -> Page[OrgOut]:
    """One page of visible orgs ordered by slug, filtered; ``parent_id`` must be visible."""
    check_limit(limit)
    query, roles = await _scope(db, principal)
    if plan is not None:
        query = query.where(col(Org.plan) == plan_named(plan).name)
    if phase is not None:
        if phase not in PHASES:
            raise BadRequest(f"Unknown phase {phase!r}.", code="unknown_phase", field="phase")
        query = query.where(col(Org.phase) == phase)
    if parent_id is not None:
        parent = await visible_org(db, principal, parent_id)
        query = query.where(col(Org.parent_id) == parent.id)
    if q:
        query = query.where(_matches(q))
        await _plan_for_the_fragment(db)
    query = after(query, col(Org.slug), col(Org.id), cursor).limit(limit + 1)
    rows = list((await db.exec(query)).all())
    more, rows = len(rows) > limit, rows[:limit]
    catalogue = await load_catalogue(db)  # once for the page, not once per org
    items = [await org_out(db, org, roles.get(org.id), catalogue=catalogue) for org in rows]
    return Page(items, encode_cursor(rows[-1].slug, rows[-1].id) if more else None)


def _item(org: Org) -> LookupItem:
    return LookupItem(value=org.id, label=f"{org.name} ({org.slug})")


async def lookup_orgs(
    db: AsyncSession, principal: Principal, *, q: str | None, ids: str | None
) -> list[LookupItem]:
    """Autocomplete (``q``: at most 20 by slug) or labels of ``ids`` (unknown ones left out)."""
    query, _ = await _scope(db, principal)
    if ids is not None:
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        if len(wanted) > MAX_LOOKUP_IDS:
            raise BadRequest(
                f"At most {MAX_LOOKUP_IDS} ids per lookup.", code="too_many_ids", field="ids"
            )
        found: dict[str, Any] = {
            org.id: org for org in (await db.exec(query.where(col(Org.id).in_(wanted)))).all()
        }
        return [_item(found[i]) for i in dict.fromkeys(wanted) if i in found]
    if q:
        query = query.where(_matches(q))
        await _plan_for_the_fragment(db)
    rows = (await db.exec(query.order_by(col(Org.slug)).limit(LOOKUP_SIZE))).all()
    return [_item(org) for org in rows]
