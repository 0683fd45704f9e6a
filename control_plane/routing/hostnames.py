"""Hostnames: one canonical spelling, and one owner across all orgs.

A hostname is stored and routed only in its canonical form: lower-case, without a trailing dot,
internationalised labels in punycode (``BÜCHER.example.`` and ``xn--bcher-kva.example`` are one
host). The owner of a hostname is the org whose ``Domain`` row for it is verified; a partial
unique index allows one verified row per hostname, so of concurrent verifications one commits.
Pending custom-domain claims own nothing: several orgs may hold one on the same hostname until
one proves it by DNS (:mod:`control_plane.routing.domains`). Every org also owns
``{slug}.{base_domain}``; :func:`claim_subdomain` records that claim when an org is created, and
custom domains may not live under the base domain at all, so they never reach an org's subdomain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

import idna
import structlog
from sqlalchemy import ColumnElement, or_, update
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import Domain, Org, utcnow
from control_plane.db.phases import OrgPhase
from control_plane.orgs.hierarchy import is_live
from control_plane.settings import get_settings
from orgplane_wire.problems import BadRequest, Conflict

log = structlog.get_logger("orgplane.routing")

SUBDOMAIN = "subdomain"
CUSTOM = "custom"

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_LENGTH = 253


class InvalidHostname(BadRequest):
    """The text is not a hostname that can be routed."""

    code = "invalid_hostname"


def _canonical_label(label: str) -> str:
    if not label.isascii():
        try:
            return idna.alabel(label).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidHostname(f"Label {label!r} is not a valid domain label.") from exc
    if not _LDH_LABEL.fullmatch(label):
        raise InvalidHostname(
            f"Label {label!r} must be 1-63 letters, digits or inner hyphens.", field="hostname"
        )
    if label.startswith("xn--"):
        try:  # a punycode label must decode to what encodes back to it
            if idna.alabel(idna.ulabel(label)).decode("ascii") != label:
                raise InvalidHostname(f"Label {label!r} is not valid punycode.")
        except idna.IDNAError as exc:
            raise InvalidHostname(f"Label {label!r} is not valid punycode.") from exc
    return label


def canonical_hostname(raw: str) -> str:
    """``raw`` in canonical form, or :class:`InvalidHostname` (400 ``invalid_hostname``).

    UTS #46 mapping folds case, full-width forms and ideographic full stops; one trailing dot
    (the DNS root) is dropped; non-ASCII labels become punycode. Wildcards, underscores, IP
    addresses and names over 253 characters are refused.
    """
    text = raw.strip()
    try:
        text = idna.uts46_remap(text, std3_rules=True, transitional=False)
    except idna.IDNAError as exc:
        raise InvalidHostname("The hostname contains characters DNS does not allow.") from exc
    text = text.removesuffix(".")
    if not text:
        raise InvalidHostname("The hostname is empty.", field="hostname")
    hostname = ".".join(_canonical_label(label) for label in text.split("."))
    if len(hostname) > _MAX_LENGTH:
        raise InvalidHostname(f"The hostname is longer than {_MAX_LENGTH} characters.")
    if hostname.rsplit(".", 1)[-1].isdigit():
        raise InvalidHostname("An IP address is not a hostname.", field="hostname")
    return hostname


def display_hostname(hostname: str) -> str:
    """The Unicode spelling of a canonical hostname, for people."""
    try:
        return idna.decode(hostname)
    except idna.IDNAError:
        return hostname


def subdomain_of(slug: str, base_domain: str) -> str:
    """The org's implicit hostname, ``{slug}.{base_domain}``, canonical."""
    return canonical_hostname(f"{slug}.{base_domain}")


def is_within(hostname: str, parent: str) -> bool:
    """Whether ``hostname`` is ``parent`` or a name under it (both canonical)."""
    return hostname == parent or hostname.endswith("." + parent)


def org_is_gone(org: Org) -> bool:
    """A deleted org (as the orgs API sees it): it owns no hostnames and gets no routes."""
    return not is_live(org) or org.phase == OrgPhase.DELETED


async def _owner_of(db: AsyncSession, hostname: str) -> tuple[Domain, Org | None] | None:
    query = select(Domain).where(Domain.hostname == hostname, col(Domain.verified).is_(True))
    domain = (await db.exec(query)).first()
    if domain is None:
        return None
    return domain, await db.get(Org, domain.org_id)


async def _free_if_stale(db: AsyncSession, hostname: str, *, org: Org) -> Domain | None:
    """The verified row of ``hostname`` if a live org holds it; rows of deleted orgs are
    dropped."""
    found = await _owner_of(db, hostname)
    if found is None:
        return None
    domain, owner = found
    if owner is None or org_is_gone(owner):
        log.info("releasing hostname of a deleted org", hostname=hostname, org_id=domain.org_id)
        await db.delete(domain)
        await db.flush()
        return None
    return domain


async def check_custom_hostname(
    db: AsyncSession,
    *,
    org: Org,
    hostname: str,
    base_domain: str,
    reserved: Iterable[str] = (),
    now: datetime | None = None,
) -> None:
    """Refuse a canonical custom ``hostname`` that ``org`` may not claim.

    409 ``hostname_taken``: another org owns it (has it verified), or it is or lies under
    another org's subdomain; other orgs' pending claims do not count. 409 ``domain_exists``:
    ``org`` has it already (its own expired claim is dropped instead). 400
    ``hostname_reserved``: it is the base domain, lies under it, or is one of the platform's
    own hosts in ``reserved``.
    400 ``invalid_hostname``: a single label (``localhost``, a TLD).
    """
    if "." not in hostname:
        raise InvalidHostname("A custom domain has at least two labels.", field="hostname")
    base = canonical_hostname(base_domain)
    if hostname in set(reserved):
        raise BadRequest("This hostname belongs to the platform.", code="hostname_reserved")
    if is_within(hostname, base) and hostname != base:
        slug = hostname.removesuffix("." + base).rsplit(".", 1)[-1]
        if slug == org.slug and hostname == subdomain_of(org.slug, base):
            raise Conflict("This org already has this hostname.", code="domain_exists")
        owner = (await db.exec(select(Org).where(Org.slug == slug))).first()
        if owner is not None and owner.id != org.id and not org_is_gone(owner):
            raise Conflict("Another org owns this hostname.", code="hostname_taken")
    if is_within(hostname, base):
        raise BadRequest(
            f"Names under {base} are the platform's; add a domain of your own.",
            code="hostname_reserved",
        )
    existing = await _free_if_stale(db, hostname, org=org)
    if existing is not None and existing.org_id != org.id:
        raise Conflict("Another org owns this hostname.", code="hostname_taken")
    query = select(Domain).where(Domain.hostname == hostname, Domain.org_id == org.id)
    own = (await db.exec(query)).first()
    if own is not None:
        if not claim_expired(own, now=now):
            raise Conflict("This org already has this hostname.", code="domain_exists")
        await db.delete(own)  # its own expired claim: claimed afresh
        await db.flush()


def claim_expired(domain: Domain, *, now: datetime | None = None) -> bool:
    """A pending claim past its ``claim_expires_at`` (verified domains never expire)."""
    expires = domain.claim_expires_at
    return not domain.verified and expires is not None and expires <= (now or utcnow())


def unexpired(now: datetime | None = None) -> ColumnElement[bool]:
    """SQL condition: the row is not an expired pending claim."""
    expires = col(Domain.claim_expires_at)
    return or_(col(Domain.verified).is_(True), expires.is_(None), expires > (now or utcnow()))


async def claim_subdomain(db: AsyncSession, *, org: Org, base_domain: str | None = None) -> None:
    """Record that ``org`` owns ``{slug}.{base_domain}``; idempotent; does not commit.

    Call it in the transaction that creates the org (and from the reconciler, which repairs
    orgs created before this claim existed or after the base domain changed). ``base_domain``
    defaults to the process settings. Raises 409 ``hostname_taken`` if a live org holds the
    name; a concurrent claim surfaces as an IntegrityError when the caller commits.
    """
    if base_domain is None:
        base_domain = get_settings().provisioning.base_domain
    hostname = subdomain_of(org.slug, base_domain)
    existing = await _free_if_stale(db, hostname, org=org)
    if existing is not None and existing.org_id != org.id:
        raise Conflict("Another org owns this hostname.", code="hostname_taken")
    query = select(Domain).where(Domain.org_id == org.id, Domain.kind == SUBDOMAIN)
    for stale in (await db.exec(query)).all():
        if stale.hostname != hostname:  # the base domain or the slug changed
            await db.delete(stale)
    if existing is None:
        await db.flush()
        domain = Domain(hostname=hostname, org_id=org.id, kind=SUBDOMAIN, verified=True)
        db.add(domain)
        record(
            db,
            action="domain.subdomain_claimed",
            org_id=org.id,
            target_type="domain",
            target_id=domain.id,
            hostname=hostname,
        )


async def bump_generation(db: AsyncSession, *, org_id: str) -> None:
    """Note that the org's routed hostnames changed (not committed).

    Backends that carry routes on the instance (Docker labels, IngressRoutes) re-apply when
    the generation moves. One UPDATE, so concurrent changes never lose an increment.
    """
    await db.exec(
        update(Org)
        .where(col(Org.id) == org_id)
        .values(generation=col(Org.generation) + 1, updated_at=utcnow())
    )


async def release_domains(db: AsyncSession, *, org_id: str) -> None:
    """Give up every hostname of a deleted org, so others may claim them; does not commit."""
    await db.exec(delete(Domain).where(col(Domain.org_id) == org_id))
