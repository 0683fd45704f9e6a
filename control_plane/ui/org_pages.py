"""Create an org, and the org detail page with its live instance status.

Every rule (who may create what, slug checks, plans) is the orgs service's; a problem it
raises is shown beside the form field it names.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Template
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import Principal
from control_plane.branding.resolve import resolve_branding
from control_plane.capacity.spares import claim_spare
from control_plane.client_ip import client_ip
from control_plane.db.models import Instance
from control_plane.db.phases import OrgPhase
from control_plane.deps import DB, RuntimeDep
from control_plane.features.plans import PLANS
from control_plane.instances.logs import recent_lines
from control_plane.members.invites import invite_out, invites_page
from control_plane.members.service import members_page
from control_plane.orgs.access import OrgAccess, governs
from control_plane.orgs.events import timeline
from control_plane.orgs.guards import OrgAccessDep
from control_plane.orgs.schemas import CreateOrgBody
from control_plane.orgs.service import create_org, org_out
from control_plane.orgs.slugs import platform_labels
from control_plane.routing.domains import DomainOut, list_domains
from control_plane.ui.charts import bar_chart, request_series, series_start
from control_plane.ui.forms import (
    FormErrors,
    back_to,
    body_from,
    form_data,
    notice_of,
    optional,
    page,
    start_over,
)
from control_plane.ui.present import age, iso, phase_tone, timestamp
from control_plane.ui.session import Viewer
from orgplane_wire.problems import ProblemError

Done = Annotated[str | None, QueryParameter(max_length=40)]
Range = Annotated[Literal["24h", "7d"], QueryParameter(name="range")]
RANGE_HOURS = {"24h": 24, "7d": 24 * 7}


def wake_reconciler(request: Request[Any, Any, Any]) -> None:
    """Start a reconcile pass now rather than at the next interval."""
    reconciler = getattr(request.app.state, "reconciler", None)
    if reconciler is not None:
        reconciler.wake()


@get("/orgs/new")
async def new_org_page(viewer: Viewer) -> Template:
    """The create-org form."""
    return page("org_new.html", me=viewer.user, values={}, errors=FormErrors(), plans=list(PLANS))


@post("/orgs/new")
async def new_org_submit(
    request: Request[Any, Any, Any], viewer: Viewer, db: DB, runtime: RuntimeDep
) -> Any:
    """Create the org (phase ``pending``) and show it; the reconciler provisions it."""
    data = await form_data(request)
    errors = FormErrors()
    values = {
        "name": data.get("name", ""),
        "slug": data.get("slug", ""),
        **optional(data, "plan", "parent_id", "owner_email"),
    }
    body = body_from(CreateOrgBody, values, errors)
    if body is not None:
        try:
            org = await create_org(
                db,
                principal=viewer,
                body=body,
                ip=client_ip(request),
                claim_spare=claim_spare,
                reserved=platform_labels(runtime.settings),
            )
        except ProblemError as exc:
            await start_over(db, viewer)
            errors.add_problem(exc)
        else:
            wake_reconciler(request)
            return back_to(f"/ui/orgs/{org.slug}", "created")
    return page("org_new.html", 400, me=viewer.user, values=data, errors=errors, plans=list(PLANS))


#: Log lines the org page's panel shows.
PANEL_LINES = 20


async def detail_context(
    db: AsyncSession, viewer: Principal, access: OrgAccess, *, hours: int
) -> dict[str, Any]:
    """Everything the org detail page shows."""
    org = access.org
    start = series_start(hours)
    series = (await request_series(db, org_ids=[org.id], hours=hours))[org.id]
    admin, member = access.has("admin"), access.has("member")
    invites = (
        (await invites_page(db, org, limit=50, cursor=None, status="pending")).items
        if admin
        else []
    )
    return {
        "me": viewer.user,
        "org": await org_out(db, org, access.role),
        "branding": await resolve_branding(db, org),
        "access": access,
        "instance": await db.get(Instance, org.id),
        "events": await timeline(db, org_id=org.id, limit=30),
        # Behind the staff gate the page shows the registry and the instance, not the tenant's.
        "domains": [DomainOut.of(d) for d in await list_domains(db, org=org)] if member else [],
        "members": (await members_page(db, org, limit=50, cursor=None)).items if member else [],
        "invites": invites,
        "can_act": admin,
        "can_delete": access.has("owner") or await governs(db, viewer, org),
        "chart": bar_chart(
            series, label=f"Requests per hour, last {hours} h", start=start, step=timedelta(hours=1)
        ),
        "range": "7d" if hours > 24 else "24h",
        "invite_out": invite_out,
        "logs": None,  # the recent-log panel: filled by org_detail only
        "logs_note": "",
    }


@get("/orgs/{org_ref:str}")
async def org_detail(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
    range_: Range = "24h",
    done: Done = None,
) -> Template:
    """Instance phase and timeline, members, invites, domains, terms, usage and actions; for
    admins, the instance's last log lines (a read of its log, audited like the API's)."""
    context = await detail_context(db, viewer, access, hours=RANGE_HOURS[range_])
    if access.has("admin") and access.org.phase in (
        OrgPhase.RUNNING,
        OrgPhase.UNHEALTHY,
        OrgPhase.STARTING,
    ):
        context["logs"], context["logs_note"] = await recent_lines(
            runtime, db, viewer, access, tail=PANEL_LINES, ip=client_ip(request)
        )
    return page("org_detail.html", notice=notice_of(done), error="", **context)


@get("/orgs/{org_ref:str}/instance.json")
async def instance_status(
    org_ref: FromPath[str], access: OrgAccessDep, viewer: Viewer, db: DB
) -> dict[str, Any]:
    """What the live-refresh script redraws: phase, reason, heartbeat age, timeline."""
    org, instance = access.org, await db.get(Instance, access.org.id)
    return {
        "phase": org.phase,
        "tone": phase_tone(org.phase),
        "reason": org.reason,
        "desired_state": org.desired_state,
        "heartbeat": age(instance.last_heartbeat_at if instance else None),
        "endpoint": instance.endpoint if instance else "",
        "delete_after": iso(org.delete_after),
        "events": [
            {"at": timestamp(e.at), "kind": e.kind, "message": e.message}
            for e in await timeline(db, org_id=org.id, limit=30)
        ],
    }


ROUTES = [new_org_page, new_org_submit, org_detail, instance_status]
