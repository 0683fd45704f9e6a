"""Usage API: an org's usage time series (JSON or CSV) and, for platform admins, top orgs.

Org admins (and platform admins) read their org's usage; anyone else gets 404
``org_not_found``, as for an org they cannot see.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Request, Response, get
from litestar.params import FromQuery, QueryParameter

from control_plane.auth import require_platform_admin
from control_plane.deps import DB, Caller
from control_plane.features.plans import plan_named
from control_plane.orgs.access import org_not_found
from control_plane.orgs.guards import OrgAccessDep
from control_plane.usage.series import (
    METRICS,
    check_step,
    org_series,
    parse_metrics,
    series_csv,
    top_orgs,
    window,
)
from orgplane_wire.problems import BadRequest

MetricList = Annotated[str | None, QueryParameter(max_length=200)]
PlanName = Annotated[str | None, QueryParameter(max_length=40)]
CSV = "text/csv"


def _wants_csv(request: Request[Any, Any, Any], fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return request.accept.best_match(["application/json", CSV], default="") == CSV


@get("/api/v1/orgs/{org_ref:str}/usage", tags=["usage"])
async def org_usage(
    request: Request[Any, Any, Any],
    access: OrgAccessDep,
    db: DB,
    start: FromQuery[datetime | None] = None,
    end: FromQuery[datetime | None] = None,
    metrics: MetricList = None,
    step: FromQuery[int] = 3600,
    format: FromQuery[Literal["json", "csv"] | None] = None,
) -> Response[Any]:
    """The org's usage per ``step`` seconds over [start, end) (default: the last 7 days)."""
    # Metering is the platform's own record: staff see it behind the approval gate too.
    if not (access.staff or access.has("admin")):
        raise org_not_found()
    span = window(start, end, default=timedelta(days=7))
    check_step(step, span)
    names = parse_metrics(metrics)
    points = await org_series(db, org_id=access.org.id, span=span, step=step, metrics=names)
    if _wants_csv(request, format):
        filename = f"usage-{access.org.slug}.csv"
        return Response(
            series_csv(points, names),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    body = {
        "org_id": access.org.id,
        "start": span.start,
        "end": span.end,
        "step": step,
        "metrics": names,
        "points": points,
    }
    return Response(body)


@get("/api/v1/usage/top", tags=["usage"])
async def usage_top(
    principal: Caller,
    db: DB,
    metric: FromQuery[str] = "requests",
    plan: PlanName = None,
    limit: FromQuery[int] = 10,
    start: FromQuery[datetime | None] = None,
    end: FromQuery[datetime | None] = None,
) -> dict[str, Any]:
    """Platform admins: the orgs with the most ``metric`` over the window (default: 30 days)."""
    require_platform_admin(principal)
    if metric not in METRICS:
        raise BadRequest(
            f"Unknown metric {metric!r}; choose among: {', '.join(METRICS)}.",
            code="unknown_metric",
            field="metric",
        )
    if not 1 <= limit <= 100:
        raise BadRequest("limit must be between 1 and 100.", code="invalid_limit", field="limit")
    if plan:
        plan_named(plan)
    span = window(start, end, default=timedelta(days=30))
    items = await top_orgs(db, metric=metric, span=span, plan=plan, limit=limit)
    return {"metric": metric, "start": span.start, "end": span.end, "items": items}


ROUTES = [org_usage, usage_top]
