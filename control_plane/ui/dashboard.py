"""The platform dashboard: every org with its phase, health, plan, members and usage."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, Membership, Org
from control_plane.deps import DB
from control_plane.errors import ProblemError
from control_plane.orgs.hierarchy import live_orgs
from control_plane.orgs.listing import PHASES, list_orgs
from control_plane.orgs.plans import PLANS
from control_plane.ui.charts import request_series, sparkline
from control_plane.ui.forms import notice_of, page
from control_plane.ui.session import Viewer

Text = Annotated[str | None, QueryParameter(max_length=200)]
PAGE_SIZE = 50


async def phase_counts(db: AsyncSession) -> dict[str, int]:
    """How many live orgs are in each phase."""
    query = select(Org.phase, func.count()).where(live_orgs()).group_by(col(Org.phase))
    return dict((await db.exec(query)).all())


async def member_counts(db: AsyncSession, org_ids: list[str]) -> dict[str, int]:
    """Direct members per org."""
    query = (
        select(Membership.org_id, func.count())
        .where(col(Membership.org_id).in_(org_ids))
        .group_by(col(Membership.org_id))
    )
    return dict((await db.exec(query)).all())


async def instances_of(db: AsyncSession, org_ids: list[str]) -> dict[str, Instance]:
    """The instance rows of the orgs, by org id."""
    rows = (await db.exec(select(Instance).where(col(Instance.org_id).in_(org_ids)))).all()
    return {row.org_id: row for row in rows}


@get("/")
async def dashboard(
    viewer: Viewer,
    db: DB,
    phase: Text = None,
    plan: Text = None,
    parent: Text = None,
    q: Text = None,
    cursor: Text = None,
    done: Text = None,
) -> Template | Redirect:
    """Platform admins see every org; everyone else goes to their own orgs."""
    if not viewer.is_platform_admin:
        return Redirect("/ui/orgs", status_code=303)
    filters = {"phase": phase or "", "plan": plan or "", "parent": parent or "", "q": q or ""}
    error, orgs, next_cursor = "", [], None
    try:
        listed = await list_orgs(
            db,
            viewer,
            limit=PAGE_SIZE,
            cursor=cursor,
            plan=plan or None,
            phase=phase or None,
            parent_id=parent or None,
            q=q or None,
        )
        orgs, next_cursor = listed.items, listed.next_cursor
    except ProblemError as exc:
        error = exc.detail
    ids = [o.id for o in orgs]
    series = await request_series(db, org_ids=ids, hours=24)
    rows: list[dict[str, Any]] = [
        {"org": o, "spark": sparkline(series[o.id], label=f"{o.slug}, last 24 h")} for o in orgs
    ]
    members, instances = await member_counts(db, ids), await instances_of(db, ids)
    for row in rows:
        row["members"] = members.get(row["org"].id, 0)
        instance = instances.get(row["org"].id)
        row["heartbeat"] = instance.last_heartbeat_at if instance else None
    return page(
        "dashboard.html",
        me=viewer.user,
        rows=rows,
        counts=await phase_counts(db),
        phases=sorted(PHASES - {"deleted"}),
        plans=list(PLANS),
        filters=filters,
        error=error,
        next_cursor=next_cursor,
        notice=notice_of(done),
    )


ROUTES = [dashboard]
