"""The platform dashboard: what needs attention first (paused rollouts, unhealthy and failed
orgs, failed webhook deliveries, failed backups), then orgs per phase and per version (image),
then every org with its phase, health, plan, members and usage."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Final

from litestar import get
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.fleet_models import Rollout
from control_plane.db.models import (
    Backup,
    Instance,
    Membership,
    Org,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from control_plane.db.phases import OrgPhase
from control_plane.deps import DB
from control_plane.features.plans import PLANS
from control_plane.fleet.registry import fleet_counts
from control_plane.orgs.hierarchy import live_orgs
from control_plane.orgs.listing import PHASES, list_orgs
from control_plane.ui.charts import request_series, sparkline
from control_plane.ui.forms import notice_of, page
from control_plane.ui.session import Viewer
from orgplane_wire.problems import ProblemError

Text = Annotated[str | None, QueryParameter(max_length=200)]
PAGE_SIZE = 50
#: Items of each kind the attention list shows, and how far back failures count.
ATTENTION_ITEMS: Final = 20
ATTENTION_DAYS: Final = 7


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


async def attention(db: AsyncSession) -> dict[str, list[Any]]:
    """What an operator should look at first: paused rollouts, live orgs that are unhealthy or
    failed (longest in that state first), and webhook deliveries and backups that failed in the last
    :data:`ATTENTION_DAYS` days (newest first)."""
    since = utcnow() - timedelta(days=ATTENTION_DAYS)
    troubled = (
        select(Org)
        .where(live_orgs(), col(Org.phase).in_((OrgPhase.UNHEALTHY, OrgPhase.FAILED)))
        .order_by(col(Org.updated_at))
        .limit(ATTENTION_ITEMS)
    )
    deliveries = (
        select(WebhookDelivery, WebhookEndpoint.url)
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
        .where(col(WebhookDelivery.status) == "failed", col(WebhookDelivery.created_at) >= since)
        .order_by(col(WebhookDelivery.completed_at).desc())
        .limit(ATTENTION_ITEMS)
    )
    backups = (
        select(Backup, Org.slug)
        .join(Org, col(Org.id) == col(Backup.org_id))
        .where(col(Backup.status) == "failed", col(Backup.created_at) >= since)
        .order_by(col(Backup.created_at).desc())
        .limit(ATTENTION_ITEMS)
    )
    paused = select(Rollout).where(col(Rollout.state) == "paused").limit(ATTENTION_ITEMS)
    return {
        "rollouts": list((await db.exec(paused)).all()),
        "orgs": list((await db.exec(troubled)).all()),
        "deliveries": [{"delivery": d, "url": url} for d, url in (await db.exec(deliveries)).all()],
        "backups": [{"backup": b, "slug": slug} for b, slug in (await db.exec(backups)).all()],
    }


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
        phases=sorted(PHASES - {OrgPhase.DELETED}),
        plans=list(PLANS),
        filters=filters,
        error=error,
        next_cursor=next_cursor,
        notice=notice_of(done),
        attention=await attention(db),
        versions=[c for c in await fleet_counts(db) if c.image],
    )


ROUTES = [dashboard]
