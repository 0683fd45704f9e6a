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
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import Domain, Org, User, utcnow
from control_plane.routing.hostnames import CUSTOM, bump_generation, org_is_gone, unexpired
from orgplane_wire.problems import Conflict

if TYPE_CHECKING:
    import dns.asyncresolver

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
        # dnspython (59 modules, ~35 ms of CPU) is loaded by the first custom domain's check,
        # not by every control-plane start.
        import dns.asyncresolver

        if not self.address:
            return dns.asyncresolver.Resolver()
        host, port = parse_resolver_address(self.address)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
        return resolver

    async def txt(self, name: str) -> list[str]:
        """Every TXT string at ``name`` (multi-part strings joined); [] if there is none."""
        import dns.exception
        import dns.resolver

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
    claim_ttl: timedelta,
    actor: User | None = None,
    ip: str = "",
) -> bool:
    """Record ``result`` on ``domain`` (not committed); True if its routing changed.

    A claim that becomes verified wins its hostname: the other orgs' pending claims on it are
    deleted. One that another org holds verified already (or wins concurrently) is deleted
    instead and :class:`HostnameTaken` raised, after a commit.

    A change bumps the org's generation, so backends that carry routes on the instance (Docker
    labels, IngressRoutes) apply the new hostnames, and is an audit event.
    """
    becomes = {CheckResult.VERIFIED: True, CheckResult.LOOKUP_FAILED: domain.verified}.get(
        result, False
    )
    won = becomes and not domain.verified
    if won:
        await _win(db, domain=domain, actor=actor, ip=ip)  # before any write of this session
    domain.last_checked_at = utcnow()
    db.add(domain)
    if not won:
        if becomes == domain.verified:
            return False
        domain.verified, domain.verified_at = False, None
        domain.claim_expires_at = utcnow() + claim_ttl  # pending again, for a while
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


class HostnameTaken(Conflict):
    """Another org proved the hostname first: this org's claim was dropped."""

    code = "hostname_taken"


async def _win(db: AsyncSession, *, domain: Domain, actor: User | None, ip: str) -> None:
    """Make ``domain`` the verified owner of its hostname (not committed), deleting the other
    orgs' pending claims on it. :class:`HostnameTaken`, the claim deleted and committed, when
    another org holds the hostname verified or verifies it concurrently.

    The hostname's rows are locked first, in id order (PostgreSQL; SQLite serialises writers):
    a concurrent verification waits, then finds the winner's row verified or its own deleted.
    The conditional update and the unique index on verified hostnames settle what is left.
    """
    rows = (
        select(Domain.id, Domain.verified)
        .where(col(Domain.hostname) == domain.hostname)
        .order_by(col(Domain.id))
        .with_for_update()
    )
    found = dict((await db.exec(rows)).all())
    taken = domain.id not in found or any(v for i, v in found.items() if i != domain.id)
    if not taken:
        now = utcnow()
        claim = (
            update(Domain)
            .where(col(Domain.id) == domain.id, col(Domain.verified).is_(False))
            .values(verified=True, verified_at=now, claim_expires_at=None, last_checked_at=now)
        )
        try:
            taken = (await db.exec(claim)).rowcount != 1
        except IntegrityError:
            taken = True
    if taken:
        await _drop_claim(db, domain=domain, actor=actor, ip=ip)
        raise HostnameTaken("Another org proved this hostname first; this claim was dropped.")
    await db.refresh(domain)
    losers = select(Domain.id, Domain.org_id).where(
        col(Domain.hostname) == domain.hostname, col(Domain.id) != domain.id
    )
    for loser_id, loser_org in (await db.exec(losers)).all():
        await db.exec(delete(Domain).where(col(Domain.id) == loser_id))
        record(
            db,
            action="domain.claim_dropped",
            org_id=loser_org,
            target_type="domain",
            target_id=loser_id,
            hostname=domain.hostname,
            winner_org_id=domain.org_id,
        )


async def _drop_claim(db: AsyncSession, *, domain: Domain, actor: User | None, ip: str) -> None:
    domain_id, org_id, hostname = domain.id, domain.org_id, domain.hostname
    actor_id = actor.id if actor is not None else None
    await db.rollback()  # expires every loaded object: the actor is loaded again
    actor = await db.get(User, actor_id) if actor_id is not None else None
    await db.exec(delete(Domain).where(col(Domain.id) == domain_id))
    record(db, action="domain.claim_dropped", actor=actor, org_id=org_id, target_type="domain",
           target_id=domain_id, ip=ip, hostname=hostname, reason="verified_elsewhere")  # fmt: skip
    await db.commit()
    log.info("claim lost to another org's verification", hostname=hostname, org_id=org_id)


async def reverify_due(
    db: AsyncSession,
    *,
    resolver: TxtResolver,
    every: timedelta = timedelta(hours=24),
    claim_ttl: timedelta = timedelta(days=7),
    batch: int = 100,
    now: datetime | None = None,
) -> int:
    """Re-check up to ``batch`` custom domains last checked ``every`` ago; returns how many.

    For the reconciler loop; commits after each domain. Pending domains are re-checked too, so
    a record published after the last manual check is picked up. Each domain is claimed with a
    conditional update of ``last_checked_at`` first, so replicas running this together check a
    domain once. Expired claims are not checked; a claim whose hostname another org proved
    first is dropped; a domain that loses its record is pending again for ``claim_ttl``.
    """
    cutoff = (now or utcnow()) - every
    query = (
        select(Domain.id, Domain.last_checked_at)
        .where(Domain.kind == CUSTOM, unexpired(now))
        .where(or_(col(Domain.last_checked_at).is_(None), col(Domain.last_checked_at) < cutoff))
        .order_by(col(Domain.last_checked_at).is_not(None), col(Domain.last_checked_at))
        .limit(batch)
    )
    # Ids, not rows: a claim dropped on the way rolls the session back, expiring loaded rows.
    due = list((await db.exec(query)).all())
    await db.commit()  # no transaction stays open across DNS look-ups
    checked = 0
    for domain_id, seen in due:
        domain = await _claim_check(db, domain_id, seen)
        if domain is None:
            continue
        org = await db.get(Org, domain.org_id)
        if org is None or org_is_gone(org):
            await db.commit()
            continue
        result = await check_domain(domain, resolver=resolver)
        try:
            await apply_result(db, domain=domain, org=org, result=result, claim_ttl=claim_ttl)
        except HostnameTaken:
            continue  # dropped and committed
        await db.commit()
        checked += 1
    return checked


async def _claim_check(db: AsyncSession, domain_id: str, seen: datetime | None) -> Domain | None:
    """The domain, freshly loaded, if this replica claimed its check (None: another did, or
    it is gone)."""
    checked = col(Domain.last_checked_at)
    claim = (
        update(Domain)
        .where(col(Domain.id) == domain_id)
        .where(checked.is_(None) if seen is None else checked == seen)
        .values(last_checked_at=utcnow())
    )
    claimed = (await db.exec(claim)).rowcount == 1
    await db.commit()
    if not claimed:
        return None
    return await db.get(Domain, domain_id, populate_existing=True)
