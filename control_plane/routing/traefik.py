"""Traefik's view of the platform: the HTTP provider's configuration and the unavailable page.

``GET /api/v1/routing/traefik`` serves the dynamic configuration for every live org (Traefik
polls it, presenting the routing token). An org whose instance is running is routed to it; a
hibernated org (or one woken and still starting) to the wake endpoint
(``control_plane/routing/wake.py``); any other live org (suspended, stopped, starting) to
``GET /org-unavailable`` here, which names the org from the Host header and answers 503. Deleted
orgs get no route, and a Host no org owns is refused, never served by a default org.
"""

from __future__ import annotations

import hmac
from html import escape
from typing import Any

import structlog
from litestar import Request, Response, get
from sqlalchemy import select as columns  # sqlmodel.select takes at most four columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import bearer_token
from control_plane.db.models import Domain, Instance, Org, utcnow
from control_plane.db.phases import DesiredState, OrgPhase
from control_plane.deps import DB, RuntimeDep
from control_plane.orgs.hierarchy import live_orgs
from control_plane.routing.handover import note_served
from control_plane.routing.hibernation import wake_routed
from control_plane.routing.hostnames import (
    CUSTOM,
    InvalidHostname,
    canonical_hostname,
    is_within,
    org_is_gone,
    subdomain_of,
)
from control_plane.settings import Settings
from orgplane_wire.problems import NotFound, Unauthenticated
from provisioners.traefik import Route, dynamic_config

log = structlog.get_logger("orgplane.routing")

#: What the unavailable page says, and when to retry, by the org's situation.
_SITUATIONS: dict[str, tuple[str, int]] = {
    "suspended": ("has been suspended. Contact the platform's support team.", 3600),
    "hibernated": ("is hibernating. It will be back when its owners start it again.", 300),
    "deleting": ("is scheduled for deletion.", 3600),
    "starting": ("is starting up or temporarily unavailable. Try again shortly.", 30),
}


def serves_instance(*, phase: str, desired_state: str, suspended: bool, endpoint: str) -> bool:
    """Whether an org's hosts go to its instance: running, meant to run, not suspended, and
    the instance has an endpoint."""
    return (
        phase == OrgPhase.RUNNING
        and desired_state == DesiredState.RUNNING
        and not suspended
        and bool(endpoint)
    )


def situation(org: Org) -> str:
    """Why an org's hosts go to the unavailable page: a key of ``_SITUATIONS``."""
    if org.suspended:
        return "suspended"
    if org.phase == OrgPhase.DELETING:
        return "deleting"
    if (
        org.phase in (OrgPhase.STOPPING, OrgPhase.STOPPED, OrgPhase.HIBERNATED)
        or org.desired_state != DesiredState.RUNNING
    ):
        return "hibernated"
    return "starting"


def _instance_url(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"http://{endpoint}"


async def collect_routes(db: AsyncSession, *, base_domain: str) -> list[Route]:
    """One route per live org: its subdomain and verified custom domains, each host once.

    Hostnames are unique in the database already; should the data ever disagree (a base domain
    changed under existing custom domains), the subdomain wins and the clash is logged.
    """
    # Columns, not ORM objects: this runs on every Traefik poll, for every org.
    query = (
        columns(
            col(Org.id),
            col(Org.slug),
            col(Org.phase),
            col(Org.desired_state),
            col(Org.suspended),
            col(Instance.endpoint),
            col(Org.hibernated_at),
            col(Org.woken_at),
        )
        .outerjoin(Instance, col(Instance.org_id) == col(Org.id))
        .where(live_orgs(), col(Org.phase) != OrgPhase.DELETED)
        .order_by(col(Org.slug))
    )
    rows = (await db.exec(query)).all()  # type: ignore[call-overload]
    customs: dict[str, list[str]] = {}
    domain_query = (
        select(Domain.org_id, Domain.hostname)
        .where(Domain.kind == CUSTOM, col(Domain.verified).is_(True))
        .order_by(col(Domain.hostname))
    )
    for org_id, hostname in (await db.exec(domain_query)).all():
        customs.setdefault(org_id, []).append(hostname)
    subdomains: dict[str, str] = {}
    for row in rows:
        try:
            subdomains[row.id] = subdomain_of(row.slug, base_domain)
        except InvalidHostname:
            log.warning("org slug is not a DNS label; not routed", org_id=row.id)
    taken = set(subdomains.values())
    routes = []
    now = utcnow()
    for row in rows:
        org_id, endpoint = row.id, row.endpoint or ""
        if org_id not in subdomains:
            continue
        hosts = [subdomains[org_id]]
        for hostname in customs.get(org_id, []):
            if hostname in taken:
                log.warning("hostname routed elsewhere; skipped", hostname=hostname, org_id=org_id)
                continue
            taken.add(hostname)
            hosts.append(hostname)
        url = None
        if serves_instance(
            phase=row.phase,
            desired_state=row.desired_state,
            suspended=row.suspended,
            endpoint=endpoint,
        ):
            url = _instance_url(endpoint)
        wake = url is None and wake_routed(row, now=now)
        sleeping = wake and row.hibernated_at is not None  # not woken yet
        routes.append(
            Route(
                org_id=org_id,
                slug=row.slug,
                hostnames=tuple(hosts),
                url=url,
                wake=wake,
                asleep=sleeping,
            )
        )
    return routes


def fallback_url(settings: Settings) -> str:
    """Where Traefik reaches the control plane for the unavailable page."""
    return (settings.routing.routing_fallback_url or settings.server.base_url).rstrip("/")


def check_routing_token(request: Request[Any, Any, Any], settings: Settings) -> None:
    """Refuse a request without the routing token (401); constant-time comparison."""
    expected = settings.routing.routing_token.get_secret_value()
    presented = bearer_token(request) or ""
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Unauthenticated(
            "Present the routing token as a Bearer token.", code="invalid_routing_token"
        )


@get("/api/v1/routing/traefik", tags=["routing"])
async def traefik_configuration(
    request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB
) -> dict[str, Any]:
    """Traefik's dynamic configuration for its HTTP provider (routing token required)."""
    settings = runtime.settings
    check_routing_token(request, settings)
    routes = await collect_routes(db, base_domain=settings.provisioning.base_domain)
    answer = dynamic_config(
        routes,
        entrypoints=settings.routing.entrypoint_names,
        tls=settings.routing.tls,
        cert_resolver=settings.routing.cert_resolver,
        fallback_url=fallback_url(settings),
        wake_url=settings.routing.wake_url.rstrip("/"),
    )
    await note_served(runtime.routing, db, [r.org_id for r in routes if r.asleep])
    return answer


async def org_by_host(db: AsyncSession, *, host: str, base_domain: str) -> Org | None:
    """The live org that owns ``host`` (a Host header, port allowed), or None."""
    try:
        hostname = canonical_hostname(host.rsplit(":", 1)[0] if "]" not in host else host)
    except InvalidHostname:
        return None
    base = canonical_hostname(base_domain)
    org: Org | None = None
    if is_within(hostname, base) and hostname.count(".") == base.count(".") + 1:
        slug = hostname.split(".", 1)[0]
        org = (await db.exec(select(Org).where(Org.slug == slug))).first()
    else:
        query = select(Domain).where(Domain.hostname == hostname, col(Domain.verified).is_(True))
        domain = (await db.exec(query)).first()
        org = await db.get(Org, domain.org_id) if domain else None
    return None if org is None or org_is_gone(org) else org


@get("/org-unavailable", include_in_schema=False)
async def org_unavailable(
    request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB
) -> Response[str]:
    """The page Traefik shows for an org that cannot be served now: 503 with Retry-After.

    Anyone can ask for it with any Host, so an org its instance serves gets the answer of an
    unknown host: the page must not tell which hosts belong to a running org, or its name."""
    host = request.headers.get("host", "")
    org = await org_by_host(db, host=host, base_domain=runtime.settings.provisioning.base_domain)
    instance = await db.get(Instance, org.id) if org is not None else None
    served = org is not None and serves_instance(
        phase=org.phase,
        desired_state=org.desired_state,
        suspended=org.suspended,
        endpoint=instance.endpoint if instance else "",
    )
    if org is None or served:
        raise NotFound("No org is reached at this address.", code="unknown_host")
    message, retry_after = _SITUATIONS[situation(org)]
    name = escape(org.name or org.slug)
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{name} is unavailable</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto'>"
        f"<h1>{name} is unavailable</h1><p>{name} {escape(message)}</p></body></html>"
    )
    return Response(
        body,
        status_code=503,
        media_type="text/html",
        headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
    )


ROUTES: list[Any] = [traefik_configuration, org_unavailable]
