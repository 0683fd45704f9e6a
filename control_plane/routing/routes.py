"""Custom-domain API: add, list, verify and remove the hostnames an org is reached at."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.deps import DB, RuntimeDep
from control_plane.orgs.guards import OrgAccessDep, needs_role
from control_plane.routing.domains import (
    DomainOut,
    add_custom_domain,
    domain_of,
    list_domains,
    remove_custom_domain,
)
from control_plane.routing.hostnames import InvalidHostname, canonical_hostname
from control_plane.routing.prometheus_sd import ROUTES as PROMETHEUS_SD_ROUTES
from control_plane.routing.traefik import ROUTES as TRAEFIK_ROUTES
from control_plane.routing.verify import CheckResult, TxtResolver, apply_result, check_domain
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from orgplane_wire.cursors import Page

Hostname = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class AddDomainBody(msgspec.Struct, forbid_unknown_fields=True):
    """A custom domain to add; any spelling (case, trailing dot, Unicode or punycode)."""

    hostname: Hostname


class VerifyAnswer(msgspec.Struct):
    """The domain after a verification attempt, and what the look-up found."""

    domain: DomainOut
    result: str


def platform_hosts(settings: Settings) -> frozenset[str]:
    """The control plane's own hostnames, which no org may claim."""
    hosts = set()
    for url in (settings.server.base_url, settings.routing.routing_fallback_url):
        host = urlsplit(url).hostname if url else None
        if host:
            try:
                hosts.add(canonical_hostname(host))
            except InvalidHostname:
                continue  # an IP address: no org can claim one anyway
    return frozenset(hosts)


def claim_ttl(settings: Settings) -> timedelta:
    """How long a pending custom-domain claim lives."""
    return timedelta(hours=settings.routing.domain_claim_ttl_hours)


def resolver_of(runtime: Runtime) -> TxtResolver:
    """The TXT resolver the settings name (the system's when empty)."""
    return TxtResolver(address=runtime.settings.routing.dns_resolver)


@post(
    "/api/v1/orgs/{org_ref:str}/domains",
    status_code=HTTP_201_CREATED,
    tags=["domains"],
    opt=needs_role("admin", to="manage its domains"),
)
async def add_domain(
    access: OrgAccessDep,
    data: JSONBody[AddDomainBody],
    actor: ActorDep,
    runtime: RuntimeDep,
    db: DB,
) -> DomainOut:
    """Add a custom domain (org admins); it is routed once its TXT record is verified."""
    org = access.org
    domain = await add_custom_domain(
        db,
        org=org,
        hostname=data.hostname,
        base_domain=runtime.settings.provisioning.base_domain,
        reserved=platform_hosts(runtime.settings),
        claim_ttl=claim_ttl(runtime.settings),
        principal=actor.principal,
        ip=actor.ip,
    )
    return DomainOut.of(domain)


@get(
    "/api/v1/orgs/{org_ref:str}/domains",
    tags=["domains"],
    opt=needs_role("member", to="see its domains"),
)
async def get_domains(access: OrgAccessDep, db: DB) -> Page[DomainOut]:
    """The org's hostnames: its subdomain and its custom domains, pending or verified."""
    org = access.org
    return Page(items=[DomainOut.of(d) for d in await list_domains(db, org=org)])


@post(
    "/api/v1/orgs/{org_ref:str}/domains/{domain_id:str}/verify",
    opt=needs_role("admin", to="manage its domains"),
    status_code=HTTP_200_OK,
    tags=["domains"],
)
async def verify_domain(
    access: OrgAccessDep,
    domain_id: FromPath[str],
    actor: ActorDep,
    runtime: RuntimeDep,
    db: DB,
) -> VerifyAnswer:
    """Look the domain's TXT record up now; a match routes the domain (org admins)."""
    org = access.org
    domain = await domain_of(db, org=org, domain_id=domain_id)
    if domain.kind != "custom":
        return VerifyAnswer(domain=DomainOut.of(domain), result=CheckResult.VERIFIED)
    await db.commit()  # no transaction stays open across the DNS look-up
    result = await check_domain(domain, resolver=resolver_of(runtime))
    changed = await apply_result(
        db,
        domain=domain,
        org=org,
        result=result,
        claim_ttl=claim_ttl(runtime.settings),
        actor=actor.user,
        ip=actor.ip,
    )
    if not changed and result is not CheckResult.VERIFIED:
        record(
            db,
            action="domain.verify",
            outcome="failure",
            actor=actor.user,
            org_id=org.id,
            target_type="domain",
            target_id=domain.id,
            ip=actor.ip,
            hostname=domain.hostname,
            result=str(result),
        )
    await db.commit()
    return VerifyAnswer(domain=DomainOut.of(domain), result=str(result))


@delete(
    "/api/v1/orgs/{org_ref:str}/domains/{domain_id:str}",
    opt=needs_role("admin", to="manage its domains"),
    status_code=HTTP_204_NO_CONTENT,
    tags=["domains"],
)
async def remove_domain(
    access: OrgAccessDep,
    domain_id: FromPath[str],
    actor: ActorDep,
    db: DB,
) -> None:
    """Remove a custom domain: it stops being routed and another org may claim it."""
    org = access.org
    domain = await domain_of(db, org=org, domain_id=domain_id)
    await remove_custom_domain(db, org=org, domain=domain, principal=actor.principal, ip=actor.ip)


ROUTES: list[Any] = [
    add_domain,
    get_domains,
    verify_domain,
    remove_domain,
    *TRAEFIK_ROUTES,
    *PROMETHEUS_SD_ROUTES,
]
