"""Platform admins configure identity providers and their claim-mapping rules.

The client secret is encrypted at rest with the deployment secret (``Runtime.box``) and never
answered, logged or audited. Every change is audited (``identity_provider.*``,
``claim_rule.*``). Deleting a provider deletes its rules and links; the memberships it managed
stay, as memberships granted in orgplane (``source`` "").
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.audit_trail import record
from control_plane.auth import require_platform_admin
from control_plane.db.models import Membership, User, utcnow
from control_plane.db.sso_models import ClaimRule, IdentityLink, IdentityProvider
from control_plane.orgs.access import find_live_org
from control_plane.runtime import Runtime
from control_plane.sso import memberships
from control_plane.sso.claims import Change, source_of
from control_plane.sso.registry import check_kind
from control_plane.sso.schemas import CreateProviderBody, CreateRuleBody, UpdateProviderBody
from orgplane_wire.problems import BadRequest, Conflict, NotFound


def checked_discovery_url(url: str) -> str:
    """An absolute https URL (http only on a loopback host), or 400 ``invalid_discovery_url``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # such as an unclosed IPv6 bracket
        host = None
    loopback = host in ("127.0.0.1", "::1", "localhost")
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise BadRequest(
            "The discovery URL is an absolute https URL (http only on a loopback host).",
            code="invalid_discovery_url",
            field="discovery_url",
        )
    return url


def _domains(domains: list[str]) -> list[str]:
    return sorted({d.strip().lower().lstrip("@") for d in domains if d.strip()})


async def get_provider(db: AsyncSession, provider_id: str) -> IdentityProvider:
    """The provider of that id, or 404 ``identity_provider_not_found``."""
    row = await db.get(IdentityProvider, provider_id)
    if row is None:
        raise NotFound("No identity provider has that id.", code="identity_provider_not_found")
    return row


async def list_providers(db: AsyncSession, *, enabled_only: bool = False) -> list[IdentityProvider]:
    """Every provider (or every enabled one), by display name."""
    query = select(IdentityProvider)
    if enabled_only:
        query = query.where(col(IdentityProvider.enabled))
    return list(await db.exec(query.order_by(col(IdentityProvider.display_name))))


async def create_provider(
    runtime: Runtime, db: AsyncSession, actor: Actor, body: CreateProviderBody
) -> IdentityProvider:
    """Add a provider (platform admins); 409 ``identity_provider_exists`` for a taken slug."""
    require_platform_admin(actor.principal)
    check_kind(body.kind)
    taken = select(IdentityProvider).where(col(IdentityProvider.slug) == body.slug)
    if (await db.exec(taken)).first() is not None:
        raise Conflict("A provider has that slug.", code="identity_provider_exists", field="slug")
    row = IdentityProvider(
        slug=body.slug,
        display_name=body.display_name.strip(),
        kind=body.kind,
        discovery_url=checked_discovery_url(body.discovery_url),
        client_id=body.client_id,
        client_secret_enc=runtime.box.encrypt(body.client_secret.encode()),
        scopes=list(dict.fromkeys(["openid", *body.scopes])),
        allowed_domains=_domains(body.allowed_domains),
        jit=body.jit,
        enabled=body.enabled,
    )
    db.add(row)
    record(db, action="identity_provider.create", actor=actor.user, ip=actor.ip,
           target_type="identity_provider", target_id=row.id, slug=row.slug)  # fmt: skip
    await db.commit()
    return row


async def update_provider(
    runtime: Runtime, db: AsyncSession, actor: Actor, provider_id: str, body: UpdateProviderBody
) -> IdentityProvider:
    """Change what ``body`` names (platform admins); a new secret replaces the old one."""
    require_platform_admin(actor.principal)
    row = await get_provider(db, provider_id)
    changed = [name for name in body.__struct_fields__ if getattr(body, name) is not None]
    if body.display_name is not None:
        row.display_name = body.display_name.strip()
    if body.discovery_url is not None:
        row.discovery_url = checked_discovery_url(body.discovery_url)
    if body.client_id is not None:
        row.client_id = body.client_id
    if body.client_secret is not None:
        row.client_secret_enc = runtime.box.encrypt(body.client_secret.encode())
    if body.scopes is not None:
        row.scopes = list(dict.fromkeys(["openid", *body.scopes]))
    if body.allowed_domains is not None:
        row.allowed_domains = _domains(body.allowed_domains)
    if body.jit is not None:
        row.jit = body.jit
    if body.enabled is not None:
        row.enabled = body.enabled
    row.updated_at = utcnow()
    db.add(row)
    record(db, action="identity_provider.update", actor=actor.user, ip=actor.ip,
           target_type="identity_provider", target_id=row.id, fields=changed)  # fmt: skip
    await db.commit()
    return row


async def delete_provider(db: AsyncSession, actor: Actor, provider_id: str) -> None:
    """Delete a provider, its rules and links; the memberships it managed become ordinary."""
    require_platform_admin(actor.principal)
    row = await get_provider(db, provider_id)
    await db.exec(
        update(Membership).where(col(Membership.source) == source_of(row.id)).values(source="")
    )
    for model in (ClaimRule, IdentityLink):
        for child in await db.exec(select(model).where(col(model.provider_id) == row.id)):
            await db.delete(child)
    await db.flush()
    await db.delete(row)
    record(db, action="identity_provider.delete", actor=actor.user, ip=actor.ip,
           target_type="identity_provider", target_id=row.id, slug=row.slug)  # fmt: skip
    await db.commit()


async def add_rule(
    db: AsyncSession, actor: Actor, provider_id: str, body: CreateRuleBody
) -> ClaimRule:
    """Add a claim-mapping rule (platform admins); 404 ``org_not_found`` for an unknown org."""
    require_platform_admin(actor.principal)
    provider = await get_provider(db, provider_id)
    org = await find_live_org(db, body.org)
    if org is None:
        raise NotFound("No org has that id or slug.", code="org_not_found", field="org")
    rule = ClaimRule(provider_id=provider.id, claim=body.claim, value=body.value,
                     org_id=org.id, role=body.role)  # fmt: skip
    db.add(rule)
    record(db, action="claim_rule.create", actor=actor.user, ip=actor.ip, org_id=org.id,
           target_type="claim_rule", target_id=rule.id, provider_id=provider.id,
           claim=rule.claim, value=rule.value, role=rule.role)  # fmt: skip
    await db.commit()
    return rule


async def delete_rule(db: AsyncSession, actor: Actor, provider_id: str, rule_id: str) -> None:
    """Delete a rule (platform admins); memberships it gave go at each user's next sign-in."""
    require_platform_admin(actor.principal)
    rule = await db.get(ClaimRule, rule_id)
    if rule is None or rule.provider_id != provider_id:
        raise NotFound("The provider has no rule of that id.", code="claim_rule_not_found")
    await db.delete(rule)
    record(db, action="claim_rule.delete", actor=actor.user, ip=actor.ip, org_id=rule.org_id,
           target_type="claim_rule", target_id=rule.id, provider_id=provider_id)  # fmt: skip
    await db.commit()


async def preview_rules(
    db: AsyncSession, actor: Actor, provider_id: str, claims: dict[str, object], user_id: str | None
) -> list[Change]:
    """What a sign-in with ``claims`` (of ``user_id``, or of a new account) would change;
    changes nothing (platform admins)."""
    require_platform_admin(actor.principal)
    provider = await get_provider(db, provider_id)
    user = None
    if user_id is not None:
        user = await db.get(User, user_id)
        if user is None:
            raise NotFound("No user has that id.", code="user_not_found", field="user_id")
    return await memberships.preview(db, provider, dict(claims), user)
