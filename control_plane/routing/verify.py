"""Proof that an org controls a custom domain: a DNS TXT record, checked now and periodically.

The org publishes ``_orgplane-challenge.<domain> TXT "orgplane-verification=<token>"``. A domain
is routed only while verified. A re-check that finds the record gone or changed unroutes the
domain; one that cannot reach DNS (timeout, SERVFAIL) changes nothing, so a resolver outage
never takes an org's domains offline.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.resolver
import structlog
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit.record import record
from control_plane.db.models import Domain, Org, User, utcnow
from control_plane.routing.hostnames import CUSTOM, bump_generation, org_is_gone

log = structlog.get_logger("orgplane.routing.verify")

CHALLENGE_LABEL = "_orgplane-challenge"
_VALUE_PREFIX = "orgplane-verification="


class CheckResult(StrEnum):
    """What one look-up of a domain's challenge record found."""

    VERIFIED = "verified"
    RECORD_MISSING = "record_missing"
    RECORD_MISMATCH = "record_mismatch"
    LOOKUP_FAILED = "lookup_failed"


def new_verification_token() -> str:
    """A fresh, unguessable token for a domain's challenge record."""
    return secrets.token_hex(16)


def challenge_name(hostname: str) -> str:
    """Where the challenge TXT record lives for ``hostname``."""
    return f"{CHALLENGE_LABEL}.{hostname}"


def challenge_value(token: str) -> str:
    """The TXT value that proves control of the domain the ``token`` was issued for."""
    return _VALUE_PREFIX + token


class LookupFailed(Exception):
    """DNS could not answer (timeout, refused, server failure): the outcome is unknown."""


@dataclass(frozen=True)
class TxtResolver:
    """Looks up TXT records, through ``address`` (``host:port``, ``[v6]:port``) or the system's."""

    address: str = ""
    timeout: float = 3.0

    def _resolver(self) -> dns.asyncresolver.Resolver:
        if not self.address:
            return dns.asyncresolver.Resolver()
        host, port = parse_resolver_address(self.address)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
        return resolver

    async def txt(self, name: str) -> list[str]:
        """Every TXT string at ``name`` (multi-part strings joined); [] if there is none."""
        try:
            resolver = self._resolver()
        except ValueError as exc:
            log.error("ORGPLANE_DNS_RESOLVER is not an address", address=self.address)
            raise LookupFailed("the resolver address is invalid") from exc
        try:
            answer = await resolver.resolve(name, "TXT", lifetime=self.timeout, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise LookupFailed(type(exc).__name__) from exc
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


def parse_resolver_address(address: str) -> tuple[str, int]:
    """``(ip, port)`` of ``1.2.3.4``, ``1.2.3.4:5353``, ``[::1]:5353`` or ``::1``."""
    host, port = address.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)  # a resolver is given by address; names would need a resolver
    return host, port


async def check_domain(domain: Domain, *, resolver: TxtResolver) -> CheckResult:
    """Look up ``domain``'s challenge record now."""
    try:
        values = await resolver.txt(challenge_name(domain.hostname))
    except LookupFailed as exc:
        log.info("challenge lookup failed", hostname=domain.hostname, error=str(exc))
        return CheckResult.LOOKUP_FAILED
    if not values:
        return CheckResult.RECORD_MISSING
    expected = challenge_value(domain.verification_token)
    if any(secrets.compare_digest(value.strip(), expected) for value in values):
        return CheckResult.VERIFIED
    return CheckResult.RECORD_MISMATCH


async def apply_result(
    db: AsyncSession,
    *,
    domain: Domain,
    org: Org,
    result: CheckResult,
    actor: User | None = None,
    ip: str = "",
) -> bool:
    """Record ``result`` on ``domain`` (not committed); True if its routing changed.

    A change bumps the org's generation, so backends that carry routes on the instance (Docker
    labels, IngressRoutes) apply the new hostnames, and is an audit event.
    """
    domain.last_checked_at = utcnow()
    db.add(domain)
    becomes = {CheckResult.VERIFIED: True, CheckResult.LOOKUP_FAILED: domain.verified}.get(
        result, False
    )
    if becomes == domain.verified:
        return False
    domain.verified = becomes
    domain.verified_at = utcnow() if becomes else None
    await bump_generation(db, org_id=org.id)
    action = "domain.verified" if becomes else "domain.verification_lost"
    record(
        db,
        action=action,
        actor=actor,
        org_id=org.id,
        target_type="domain",
        target_id=domain.id,
        ip=ip,
        hostname=domain.hostname,
        result=str(result),
    )
    return True


async def reverify_due(
    db: AsyncSession,
    *,
    resolver: TxtResolver,
    every: timedelta = timedelta(hours=24),
    batch: int = 100,
    now: datetime | None = None,
) -> int:
    """Re-check up to ``batch`` custom domains last checked ``every`` ago; returns how many.

    For the reconciler loop; commits after each domain. Pending domains are re-checked too, so
    a record published after the last manual check is picked up. Each domain is claimed with a
    conditional update of ``last_checked_at`` first, so replicas running this together check a
    domain once.
    """
    cutoff = (now or utcnow()) - every
    query = (
        select(Domain)
        .where(Domain.kind == CUSTOM)
        .where(or_(col(Domain.last_checked_at).is_(None), col(Domain.last_checked_at) < cutoff))
        .order_by(col(Domain.last_checked_at).is_not(None), col(Domain.last_checked_at))
        .limit(batch)
    )
    due = list((await db.exec(query)).all())
    await db.commit()  # no transaction stays open across DNS look-ups
    checked = 0
    for domain in due:
        if not await _claim_check(db, domain):
            continue
        org = await db.get(Org, domain.org_id)
        if org is None or org_is_gone(org):
            await db.commit()
            continue
        result = await check_domain(domain, resolver=resolver)
        await apply_result(db, domain=domain, org=org, result=result)
        await db.commit()
        checked += 1
    return checked


async def _claim_check(db: AsyncSession, domain: Domain) -> bool:
    seen = col(Domain.last_checked_at)
    claim = (
        update(Domain)
        .where(col(Domain.id) == domain.id)
        .where(seen.is_(None) if domain.last_checked_at is None else seen == domain.last_checked_at)
        .values(last_checked_at=utcnow())
    )
    claimed = (await db.exec(claim)).rowcount == 1
    await db.commit()
    if claimed:
        await db.refresh(domain)
    return claimed
