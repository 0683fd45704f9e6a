"""``/api/v1/identity-providers``: platform admins configure sign-in through external
identity providers and their claim-mapping rules.

    GET    /api/v1/identity-providers                      every provider
    POST   /api/v1/identity-providers                      add one (secret write-only)
    GET    /api/v1/identity-providers/{id}                 one
    PATCH  /api/v1/identity-providers/{id}                 change it
    DELETE /api/v1/identity-providers/{id}                 delete it, its rules and links
    GET    /api/v1/identity-providers/{id}/rules           its claim-mapping rules
    POST   /api/v1/identity-providers/{id}/rules           add a rule
    DELETE /api/v1/identity-providers/{id}/rules/{rule}    delete a rule
    POST   /api/v1/identity-providers/{id}/rules/preview   dry run: what a sign-in would change

and an org's SSO requirement (:mod:`control_plane.sso.require`).
"""

from __future__ import annotations

from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.actor import ActorDep
from control_plane.auth import require_platform_admin
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.sso import admin
from control_plane.sso.memberships import rules_of
from control_plane.sso.require import ROUTES as REQUIREMENT_ROUTES
from control_plane.sso.schemas import (
    ChangeOut,
    CreateProviderBody,
    CreateRuleBody,
    PreviewBody,
    PreviewOut,
    ProviderOut,
    RuleOut,
    UpdateProviderBody,
)
from orgplane_wire.cursors import Page

BASE = "/api/v1/identity-providers"
TAGS = ["identity"]


@get(BASE, tags=TAGS)
async def list_providers(principal: Caller, db: DB) -> Page[ProviderOut]:
    """Every identity provider (platform admins)."""
    require_platform_admin(principal)
    return Page([ProviderOut.of(row) for row in await admin.list_providers(db)])


@post(BASE, status_code=HTTP_201_CREATED, tags=TAGS)
async def create_provider(
    data: JSONBody[CreateProviderBody], actor: ActorDep, db: DB, runtime: RuntimeDep
) -> ProviderOut:
    """Add an identity provider (platform admins). The client secret is stored encrypted and
    never answered; register ``redirect_path`` (on this control plane's URL) at the provider."""
    return ProviderOut.of(await admin.create_provider(runtime, db, actor, data))


@get(BASE + "/{provider_id:str}", tags=TAGS)
async def get_provider(provider_id: FromPath[str], principal: Caller, db: DB) -> ProviderOut:
    """One identity provider (platform admins)."""
    require_platform_admin(principal)
    return ProviderOut.of(await admin.get_provider(db, provider_id))


@patch(BASE + "/{provider_id:str}", tags=TAGS)
async def update_provider(
    provider_id: FromPath[str],
    data: JSONBody[UpdateProviderBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> ProviderOut:
    """Change an identity provider (platform admins); fields left out stay as they are."""
    return ProviderOut.of(await admin.update_provider(runtime, db, actor, provider_id, data))


@delete(BASE + "/{provider_id:str}", status_code=HTTP_204_NO_CONTENT, tags=TAGS)
async def delete_provider(provider_id: FromPath[str], actor: ActorDep, db: DB) -> None:
    """Delete an identity provider with its rules and account links (platform admins); the
    memberships it managed stay, as ordinary memberships."""
    await admin.delete_provider(db, actor, provider_id)


@get(BASE + "/{provider_id:str}/rules", tags=TAGS)
async def list_rules(provider_id: FromPath[str], principal: Caller, db: DB) -> Page[RuleOut]:
    """The provider's claim-mapping rules, oldest first (platform admins)."""
    require_platform_admin(principal)
    provider = await admin.get_provider(db, provider_id)
    return Page([RuleOut.of(rule) for rule in await rules_of(db, provider.id)])


@post(BASE + "/{provider_id:str}/rules", status_code=HTTP_201_CREATED, tags=TAGS)
async def create_rule(
    provider_id: FromPath[str], data: JSONBody[CreateRuleBody], actor: ActorDep, db: DB
) -> RuleOut:
    """Add a rule: users whose claim holds ``value`` get ``role`` in ``org`` at each sign-in
    (platform admins)."""
    return RuleOut.of(await admin.add_rule(db, actor, provider_id, data))


@delete(BASE + "/{provider_id:str}/rules/{rule_id:str}", status_code=HTTP_204_NO_CONTENT, tags=TAGS)
async def delete_rule(
    provider_id: FromPath[str], rule_id: FromPath[str], actor: ActorDep, db: DB
) -> None:
    """Delete a rule (platform admins); what it gave goes at each user's next sign-in."""
    await admin.delete_rule(db, actor, provider_id, rule_id)


@post(BASE + "/{provider_id:str}/rules/preview", status_code=HTTP_200_OK, tags=TAGS)
async def preview_rules(
    provider_id: FromPath[str], data: JSONBody[PreviewBody], actor: ActorDep, db: DB
) -> PreviewOut:
    """Dry run (platform admins): the memberships a sign-in with ``claims`` would add, change
    or remove for ``user_id`` (or a new account). Nothing is changed."""
    changes = await admin.preview_rules(db, actor, provider_id, data.claims, data.user_id)
    return PreviewOut(dry_run=True, changes=[ChangeOut.of(c) for c in changes])


ROUTES = [
    list_providers,
    create_provider,
    get_provider,
    update_provider,
    delete_provider,
    list_rules,
    create_rule,
    delete_rule,
    preview_rules,
    *REQUIREMENT_ROUTES,
]
