"""Custom domains of an org: add (pending), verify (routed), remove, and their public view.

A pending claim owns nothing: several orgs may claim one hostname, each with its own challenge
token. The first to prove it by DNS wins (one verified row per hostname, a unique index), the
others' claims are dropped, and a verified hostname cannot be claimed by anyone else
(409 ``hostname_taken``). A claim still pending ``domain_claim_ttl_hours`` after it was made
(or lost its verification) has expired: it is ignored (not listed, not verifiable, not counted,
no obstacle to its org claiming the name again) and housekeeping deletes it.

Who may see or change an org's domains follows the orgs' access rules
(:mod:`control_plane.orgs.access`): members read, admins and owners (direct or of an ancestor)
write, platform admins do both; an org the caller cannot see is a 404.

Adding a custom domain needs the ``custom_domains`` feature among the org's effective features
(:func:`control_plane.features.plans.require_feature`): 403 ``feature_not_in_plan`` otherwise,
audited ``domain.added`` with outcome ``denied``, nothing stored. An org that loses the feature
(a plan change, an override) keeps the domains it has: they go on being routed and verified,
can be removed, and no new one can be added.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import structlog
from sqlalchemy import not_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.db.models import Domain, Org, utcnow
from control_plane.features.plans import require_feature
from control_plane.orgs.hierarchy import effective_features
from control_plane.routing.hostnames import (
    CUSTOM,
    SUBDOMAIN,
    bump_generation,
    canonical_hostname,
    check_custom_hostname,
    claim_expired,
    display_hostname,
    unexpired,
)
from control_plane.routing.verify import (
    challenge_name,
    challenge_value,
    new_verification_token,
)
from control_plane.webhooks.events import emit
from orgplane_wire.problems import BadRequest, Conflict, NotFound, ProblemError

log = structlog.get_logger("orgplane.routing")

#: Custom domains one org may hold (pending ones included).
MAX_CUSTOM_DOMAINS = 50


class Challenge(msgspec.Struct):
    """The DNS record that proves control of a custom domain."""

    record_type: str
    record_name: str
    record_value: str


class DomainOut(msgspec.Struct):
    """The public view of a domain."""

    id: str
    hostname: str
    display_hostname: str
    kind: str
    verified: bool
    created_at: datetime
    verified_at: datetime | None
    last_checked_at: datetime | None
    challenge: Challenge | None

    @classmethod
    def of(cls, domain: Domain) -> DomainOut:
        """``domain`` as the API shows it; the challenge only for custom domains."""
        challenge = None
        if domain.kind == CUSTOM:
            challenge = Challenge(
                record_type="TXT",
                record_name=challenge_name(domain.hostname),
                record_value=challenge_value(domain.verification_token),
            )
        return cls(
            id=domain.id,
            hostname=domain.hostname,
            display_hostname=display_hostname(domain.hostname),
            kind=domain.kind,
            verified=domain.verified,
            created_at=domain.created_at,
            verified_at=domain.verified_at,
            last_checked_at=domain.last_checked_at,
            challenge=challenge,
        )


async def domain_of(db: AsyncSession, *, org: Org, domain_id: str) -> Domain:
    """The org's domain with this id, or 404 (an expired claim too)."""
    domain = await db.get(Domain, domain_id)
    if domain is None or domain.org_id != org.id or claim_expired(domain):
        raise NotFound("No such domain.", code="domain_not_found")
    return domain


async def list_domains(db: AsyncSession, *, org: Org) -> list[Domain]:
    """The org's domains: its subdomain first, then custom domains by hostname (expired claims
    left out)."""
    query = select(Domain).where(Domain.org_id == org.id, unexpired())
    rows = (await db.exec(query)).all()
    return sorted(rows, key=lambda d: (d.kind != SUBDOMAIN, d.hostname))


async def add_custom_domain(
    db: AsyncSession,
    *,
    org: Org,
    hostname: str,
    base_domain: str,
    reserved: frozenset[str],
    claim_ttl: timedelta,
    principal: Principal,
    ip: str,
) -> Domain:
    """Claim ``hostname`` for ``org`` as a pending custom domain, and commit.

    Refused (403 ``feature_not_in_plan``, audited as denied) when the org's effective features
    lack ``custom_domains``. Refused when another org has it verified (409 ``hostname_taken``);
    other orgs' pending claims do not stand in the way. The (org, hostname) unique constraint
    settles one org's concurrent claims: one insert commits, the others answer 409
    ``domain_exists``.
    """
    await _require_custom_domains(db, org=org, principal=principal, ip=ip)
    canonical = canonical_hostname(hostname)
    # Read now: after a lost race the rollback expires every object of the session.
    conflict = {"org_id": org.id, "slug": org.slug, "hostname": canonical}
    conflict["user_id"] = principal.user.id
    try:
        await check_custom_hostname(
            db, org=org, hostname=canonical, base_domain=base_domain, reserved=reserved
        )
    except Conflict as exc:
        if exc.code == "hostname_taken":  # another org has it verified
            await _report_conflict(db, conflict)
        raise
    count_query = select(func.count()).where(
        Domain.org_id == org.id, Domain.kind == CUSTOM, unexpired()
    )
    if (await db.exec(count_query)).one() >= MAX_CUSTOM_DOMAINS:
        raise Conflict(
            f"An org may have at most {MAX_CUSTOM_DOMAINS} custom domains.",
            code="domain_limit_reached",
        )
    domain = Domain(
        hostname=canonical,
        org_id=org.id,
        kind=CUSTOM,
        verification_token=new_verification_token(),
        claim_expires_at=utcnow() + claim_ttl,
    )
    db.add(domain)
    record(
        db,
        action="domain.added",
        actor=principal.user,
        org_id=org.id,
        target_type="domain",
        target_id=domain.id,
        ip=ip,
        hostname=canonical,
    )
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        log.info("hostname claimed concurrently by another request", hostname=canonical)
        raise Conflict("This org already has this hostname.", code="domain_exists") from None
    return domain


async def _require_custom_domains(
    db: AsyncSession, *, org: Org, principal: Principal, ip: str
) -> None:
    """Pass when the org has ``custom_domains``; else audit the refusal (in its own
    transaction: nothing else was written yet) and raise 403 ``feature_not_in_plan``."""
    try:
        require_feature(await effective_features(db, org), "custom_domains", to="add a domain")
    except ProblemError as refused:
        record(
            db,
            action="domain.added",
            outcome="denied",
            actor=principal.user,
            org_id=org.id,
            target_type="org",
            target_id=org.id,
            ip=ip,
            code=refused.code,
            plan=org.plan,
        )
        await db.commit()
        raise


async def _report_conflict(db: AsyncSession, data: dict[str, str]) -> None:
    """Commit a ``hostname.conflict`` webhook event: the refused claim wrote nothing (a lost
    insert race was rolled back), and the 409 that follows would roll the event back. Not a
    rollback here: that would expire the objects a caller goes on using."""
    emit(db, "hostname.conflict", data)
    await db.commit()


async def remove_custom_domain(
    db: AsyncSession, *, org: Org, domain: Domain, principal: Principal, ip: str
) -> None:
    """Stop routing and release a custom domain, and commit. The subdomain stays."""
    if domain.kind != CUSTOM:
        raise BadRequest(
            "The org's own subdomain cannot be removed.", code="subdomain_not_removable"
        )
    if domain.verified:
        await bump_generation(db, org_id=org.id)
    await db.delete(domain)
    record(
        db,
        action="domain.removed",
        actor=principal.user,
        org_id=org.id,
        target_type="domain",
        target_id=domain.id,
        ip=ip,
        hostname=domain.hostname,
        was_verified=domain.verified,
    )
    await db.commit()


async def routed_hostnames(db: AsyncSession, *, org: Org, subdomain: str) -> list[str]:
    """Hostnames an org's instance answers for: ``subdomain`` and verified custom domains.

    For provisioners (``InstanceSpec.hostnames``, ``ORGPLANE_HOSTNAMES``).
    """
    query = (
        select(Domain.hostname)
        .where(Domain.org_id == org.id, Domain.kind == CUSTOM, col(Domain.verified).is_(True))
        .order_by(col(Domain.hostname))
    )
    customs = [h for h in (await db.exec(query)).all() if h != subdomain]
    return [subdomain, *customs]


async def drop_expired_claims(db: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete expired pending claims, audited, and commit; returns how many.

    For the reconciler's housekeeping; every other reader ignores them already.
    """
    query = select(Domain).where(not_(unexpired(now)))
    expired = list((await db.exec(query)).all())
    for domain in expired:
        await db.delete(domain)
        record(
            db,
            action="domain.claim_expired",
            org_id=domain.org_id,
            target_type="domain",
            target_id=domain.id,
            hostname=domain.hostname,
        )
    await db.commit()
    if expired:
        log.info("expired domain claims removed", count=len(expired))
    return len(expired)
