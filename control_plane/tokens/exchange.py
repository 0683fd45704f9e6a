"""Org switching by OAuth 2.0 Token Exchange (RFC 8693): an access token in, an org token out.

The caller presents their control-plane access token and names one org, by
``audience=org:<slug>`` (or ``org:<id>``, or the org's audience URN) or by
``resource=<URL of the org instance>`` (``https://{slug}.{base_domain}/...`` or a verified
custom domain). Membership, role, features and the org's state are read from the database at
this moment, so a removed member or a suspended org is refused at once.

One answer covers "no such org" and "not yours" (``invalid_target``), so the endpoint does not
reveal which orgs exist. A platform admin who is not a member enters through
:mod:`control_plane.tokens.support_access`.

Cost: the subject token's signature, then at most a handful of indexed lookups (user by id,
org by slug, the caller's memberships along the org's ancestors, the ancestors' features).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import verify_access_token
from control_plane.db.models import Domain, Org, User, utcnow
from control_plane.orgs.access import find_live_org, org_role
from control_plane.orgs.hierarchy import effective_features
from control_plane.runtime import Runtime
from control_plane.tokens.access import CLIENT_ID
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, OAuthError
from control_plane.tokens.jws import InvalidToken, sign
from control_plane.tokens.support_access import (
    SupportAccessRefused,
    record_staff_access,
    staff_entry,
)
from org_instance.contract import org_audience

#: What each role may do in an org token's ``scope``; a request may narrow it.
ROLE_SCOPES: Final = {
    "member": ("org:read", "org:write"),
    "admin": ("org:read", "org:write", "org:admin"),
    "owner": ("org:read", "org:write", "org:admin", "org:owner"),
}
#: The role a staff member acts with in an org they are not a member of.
STAFF_ROLE: Final = "admin"
NO_SUCH_ORG: Final = "No such org, or you have no access to it."
MAX_TARGET_LENGTH: Final = 2048


@dataclass(frozen=True)
class ExchangeRequest:
    """The token-exchange parameters the token endpoint received."""

    subject_token: str
    subject_token_type: str
    audience: tuple[str, ...] = ()
    resource: tuple[str, ...] = ()
    requested_token_type: str | None = None
    scope: str | None = None
    reason: str | None = None
    ip: str = ""


@dataclass(frozen=True)
class ExchangedToken:
    """An issued org token and its RFC 8693 §2.2.1 answer."""

    access_token: str
    issued_token_type: str
    expires_in: int
    scope: str
    claims: dict[str, Any]

    def answer(self) -> dict[str, Any]:
        """The JSON body of a successful exchange."""
        return {
            "access_token": self.access_token,
            "issued_token_type": self.issued_token_type,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


def _issued_type(request: ExchangeRequest) -> str:
    if request.subject_token_type != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", f"subject_token_type must be {ACCESS_TOKEN_TYPE}.")
    requested = request.requested_token_type or ACCESS_TOKEN_TYPE
    if requested not in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        raise OAuthError("invalid_request", "requested_token_type must be an access_token or jwt.")
    return requested


async def _subject(runtime: Runtime, db: AsyncSession, token: str) -> User:
    # RFC 8693 §2.2.2: an invalid subject_token is answered with invalid_request.
    try:
        claims = await verify_access_token(token, runtime=runtime, db=db)
    except InvalidToken:
        raise OAuthError("invalid_request", "The subject_token is invalid or expired.") from None
    user = await db.get(User, claims["sub"])
    if user is None or user.disabled:
        raise OAuthError("invalid_request", "The subject_token is invalid or expired.")
    return user


def _resource_host(resource: str) -> str:
    try:
        parts = urlsplit(resource)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        host, parts = "", None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise OAuthError("invalid_target", "resource must be an absolute http(s) URL.")
    return host


async def _org_by_resource(runtime: Runtime, db: AsyncSession, resource: str) -> Org | None:
    host = _resource_host(resource)
    domain = (
        await db.exec(
            select(Domain.org_id).where(col(Domain.hostname) == host, col(Domain.verified))
        )
    ).first()
    if domain is not None:
        return await find_live_org(db, domain)
    base = runtime.settings.provisioning.base_domain.strip(".").lower()
    label = host.removesuffix("." + base)
    if label != host and label and "." not in label:
        return await find_live_org(db, label)
    return None


async def _org_by_audience(db: AsyncSession, audience: str) -> Org | None:
    if audience.startswith("org:") and len(audience) > 4:
        return await find_live_org(db, audience[4:])
    if audience.startswith(org_audience("")):
        org = await find_live_org(db, audience.removeprefix(org_audience("")))
        return org if org is not None and org_audience(org.id) == audience else None
    return None


async def resolve_target(runtime: Runtime, db: AsyncSession, request: ExchangeRequest) -> Org:
    """The one live org the request names, or ``invalid_target``."""
    targets = [*request.audience, *request.resource]
    if not targets:
        raise OAuthError("invalid_request", "Name the org with audience=org:<slug> or resource.")
    if len(targets) > 1:
        raise OAuthError("invalid_target", "An org token is for exactly one org.")
    if len(targets[0]) > MAX_TARGET_LENGTH:
        raise OAuthError("invalid_target", NO_SUCH_ORG)
    if request.audience:
        org = await _org_by_audience(db, request.audience[0])
    else:
        org = await _org_by_resource(runtime, db, request.resource[0])
    if org is None:
        raise OAuthError("invalid_target", NO_SUCH_ORG)
    return org


def _refuse_unusable(org: Org) -> None:
    # Only callers who may see the org get here, so naming its state leaks nothing.
    if org.suspended:
        raise OAuthError("invalid_target", "The org is suspended.")
    if org.delete_after is not None:
        raise OAuthError("invalid_target", "The org is pending deletion.")


def _scope(role: str, requested: str | None) -> str:
    allowed = ROLE_SCOPES.get(role, ())
    if not requested:
        return " ".join(allowed)
    wanted = set(requested.split())
    if not wanted <= set(allowed):
        raise OAuthError("invalid_scope", f"Your role allows at most: {' '.join(allowed)}.")
    return " ".join(s for s in allowed if s in wanted)


async def exchange_token(
    runtime: Runtime, db: AsyncSession, *, request: ExchangeRequest, now: datetime | None = None
) -> ExchangedToken:
    """Issue an org token for the subject of ``request``; raises :class:`OAuthError`."""
    issued_type = _issued_type(request)
    user = await _subject(runtime, db, request.subject_token)
    org = await resolve_target(runtime, db, request)
    role = await org_role(db, user, org)
    if role is None and not user.is_platform_admin:
        raise OAuthError("invalid_target", NO_SUCH_ORG)
    _refuse_unusable(org)
    staff_reason, approval = None, None
    if role is None:
        try:
            staff_reason, approval = await staff_entry(
                db, org=org, staff=user, reason=request.reason, now=now or utcnow()
            )
        except SupportAccessRefused as exc:
            error = "invalid_request" if exc.code == "reason_required" else "invalid_target"
            raise OAuthError(error, exc.message, orgplane_code=exc.code) from None
        role = STAFF_ROLE
    scope = _scope(role, request.scope)
    claims: dict[str, Any] = {
        "iss": runtime.issuer,
        "sub": user.id,
        "aud": org_audience(org.id),
        "client_id": CLIENT_ID,
        "scope": scope,
        "org_id": org.id,
        "org_slug": org.slug,
        "org_role": role,
        "plan": org.plan,
        "features": await effective_features(db, org),
    }
    if staff_reason is not None:
        claims["act"] = {"sub": user.id, "email": user.email}
    ttl = runtime.settings.tokens.org_token_ttl
    token, full = sign(claims, await runtime.keyring.signing_key(db), ttl=ttl)
    if staff_reason is not None:
        record_staff_access(db, staff=user, org=org, reason=staff_reason, approval=approval,
                            jti=full["jti"], ip=request.ip)
        await db.commit()
    return ExchangedToken(token, issued_type, ttl, scope, full)
