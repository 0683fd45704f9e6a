"""Request and response bodies of ``/api/v1/identity-providers``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from control_plane.db.sso_models import ClaimRule, IdentityProvider
from control_plane.sso.claims import Change
from control_plane.users.schemas import Strict

ProviderSlug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$")]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
ClientSecret = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
Scope = Annotated[str, msgspec.Meta(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,64}$")]
Domain = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.-]{1,253}$")]
Scopes = Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=20)]
Domains = Annotated[list[Domain], msgspec.Meta(max_length=100)]
ClaimPath = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*$",
                                        max_length=200)]  # fmt: skip
ClaimValue = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
RuleRole = Literal["member", "admin"]


class CreateProviderBody(Strict):
    #: The short name in the sign-in URLs (lower case, digits, dashes).
    slug: ProviderSlug
    #: Shown on the login page: "Sign in with <display_name>".
    display_name: DisplayName
    #: The provider's ``.well-known/openid-configuration`` (https; http only on loopback).
    discovery_url: Url
    client_id: ClientId
    #: Write-only: stored encrypted, never answered.
    client_secret: ClientSecret
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] = "oidc"
    scopes: Scopes = msgspec.field(default_factory=lambda: ["openid", "email", "profile"])
    #: Email domains allowed to sign in; empty: any.
    allowed_domains: Domains = msgspec.field(default_factory=list)
    #: Create accounts for unknown users at their first sign-in.
    jit: bool = True
    enabled: bool = True


class UpdateProviderBody(Strict):
    display_name: DisplayName | None = None
    discovery_url: Url | None = None
    client_id: ClientId | None = None
    client_secret: ClientSecret | None = None
    scopes: Scopes | None = None
    allowed_domains: Domains | None = None
    jit: bool | None = None
    enabled: bool | None = None


class ProviderOut(msgspec.Struct):
    id: str
    slug: str
    display_name: str
    kind: str
    discovery_url: str
    client_id: str
    #: Whether a secret is stored (the secret itself is never answered).
    has_client_secret: bool
    scopes: list[str]
    allowed_domains: list[str]
    jit: bool
    enabled: bool
    #: Where the provider must send users back (register it at the provider).
    redirect_path: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: IdentityProvider) -> ProviderOut:
        return cls(
            id=row.id,
            slug=row.slug,
            display_name=row.display_name,
            kind=row.kind,
            discovery_url=row.discovery_url,
            client_id=row.client_id,
            has_client_secret=bool(row.client_secret_enc),
            scopes=list(row.scopes),
            allowed_domains=list(row.allowed_domains),
            jit=row.jit,
            enabled=row.enabled,
            redirect_path=f"/ui/auth/sso/{row.slug}/callback",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class CreateRuleBody(Strict):
    #: A dotted path into the claims (``groups``, ``org.department``) or ``email_domain``.
    claim: ClaimPath
    #: The value the claim must hold (a list claim: one of its strings).
    value: ClaimValue
    #: The org (id or slug) the rule grants a membership of.
    org: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    role: RuleRole = "member"


class RuleOut(msgspec.Struct):
    id: str
    provider_id: str
    claim: str
    value: str
    org_id: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, row: ClaimRule) -> RuleOut:
        return cls(row.id, row.provider_id, row.claim, row.value, row.org_id, row.role,
                   row.created_at)  # fmt: skip


class PreviewBody(Strict):
    """``claims`` as the provider would send them; with ``user_id``, that user's memberships
    now are the starting point (without: a new account's)."""

    claims: Annotated[dict[str, Any], msgspec.Meta(max_length=100)]
    user_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class ChangeOut(msgspec.Struct):
    org_id: str
    #: ``add``, ``change``, ``remove``, or ``unmanaged`` (granted in orgplane: kept as is).
    action: str
    role: str | None
    previous_role: str | None

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls(change.org_id, change.action, change.role, change.previous_role)


class PreviewOut(msgspec.Struct):
    #: Always true: nothing was changed.
    dry_run: bool
    changes: list[ChangeOut]
