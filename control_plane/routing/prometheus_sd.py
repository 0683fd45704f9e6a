"""Prometheus service discovery of the org instances (``http_sd_configs``).

``GET /api/v1/routing/prometheus`` lists every instance that serves (the same rule as Traefik's
routes: running, meant to run, not suspended, with an endpoint) as one target group each, with
the labels ``org_id``, ``org_slug``, ``plan`` and ``version``. Prometheus polls it presenting
the routing token, like Traefik's HTTP provider; the shipped scrape configuration is
``deploy/prometheus/prometheus.yml``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request, get
from sqlalchemy import select as columns
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, Org
from control_plane.db.phases import OrgPhase
from control_plane.deps import DB, RuntimeDep
from control_plane.orgs.hierarchy import live_orgs
from control_plane.routing.traefik import check_routing_token, serves_instance


def target_of(endpoint: str) -> tuple[str, str]:
    """``host:port`` and scheme of an instance endpoint (``http://host:port`` or bare)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    return parts.netloc, parts.scheme


async def target_groups(db: AsyncSession) -> list[dict[str, Any]]:
    """One target group per serving instance, ordered by slug."""
    query = (
        columns(
            col(Org.id),
            col(Org.slug),
            col(Org.plan),
            col(Org.phase),
            col(Org.desired_state),
            col(Org.suspended),
            col(Instance.endpoint),
            col(Instance.version),
        )
        .join(Instance, col(Instance.org_id) == col(Org.id))
        .where(live_orgs(), col(Org.phase) == OrgPhase.RUNNING)
        .order_by(col(Org.slug))
    )
    groups = []
    for row in (await db.exec(query)).all():  # type: ignore[call-overload]
        if not serves_instance(
            phase=row.phase,
            desired_state=row.desired_state,
            suspended=row.suspended,
            endpoint=row.endpoint or "",
        ):
            continue
        target, scheme = target_of(row.endpoint)
        labels = {
            "org_id": row.id,
            "org_slug": row.slug,
            "plan": row.plan,
            "version": row.version or "unknown",
            "__scheme__": scheme,
        }
        groups.append({"targets": [target], "labels": labels})
    return groups


@get("/api/v1/routing/prometheus", tags=["routing"])
async def prometheus_targets(
    request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB
) -> list[dict[str, Any]]:
    """The serving org instances as Prometheus HTTP service discovery target groups (routing
    token required)."""
    check_routing_token(request, runtime.settings)
    return await target_groups(db)


ROUTES: list[Any] = [prometheus_targets]
