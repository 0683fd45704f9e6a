"""Org switching by OAuth 2.0 Token Exchange (RFC 8693): an access token in, an org token out.

The caller presents their control-plane access token (or a personal access token, see below)
and names one org, by
``audience=org:<slug>`` (or ``org:<id>``, or the org's audience URN) or by
``resource=<URL of the org instance>`` (``https://{slug}.{base_domain}/...`` or a verified
custom domain). Membership, role, features and the org's state are read from the database at
this moment, so a removed member or a suspended org is refused at once.

One answer covers "no such org" and "not yours" (``invalid_target``), so the endpoint does not
reveal which orgs exist. A platform admin who is not a member enters through
:mod:`control_plane.tokens.support_access`.

A personal access token (``opat_…``, sent with ``subject_token_type`` either
``PERSONAL_TOKEN_TYPE`` or the access-token type) enters only the orgs it was made for, whose
features include ``api_access``, never as staff, with its scopes intersected with the user's
role there (:mod:`control_plane.tokens.personal_tokens`).

Cost: the subject token's signature, then one indexed query (org by slug or id, joined with the
user and their membership, with the feature catalogue as a JSON column: its access rules may
name this user); a verified custom domain adds one, and an org below a parent adds the walk up
its ancestors (at most ``MAX_DEPTH``) for inherited roles and features. A personal access
token costs its lookup by hash (one indexed query) instead of the signature check, and at most
once a minute an UPDATE of its last use. The queries run outside a transaction
(``Runtime.readers``): they need no common snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import String, and_, bindparam, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import verify_access_token
from control_plane.db.models import Domain, Feature, Membership, Org, PersonalToken, User, utcnow
from control_plane.features.rules import catalogue_column, catalogue_from
from control_plane.orgs.access import org_role
from control_plane.orgs.hierarchy import ancestor_hold, effective_features, live_orgs
from control_plane.runtime import Runtime
from control_plane.signing.jws import sign
from control_plane.signing.revocation import session_current, token_denied
from control_plane.tokens.access import CLIENT_ID
from control_plane.tokens.grants import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    PERSONAL_TOKEN_TYPE,
    OAuthError,
)
from control_plane.tokens.mfa_gate import check_mfa, check_sso, subject_amr
from control_plane.tokens.personal_tokens import PREFIX as PERSONAL_PREFIX
from control_plane.tokens.personal_tokens import (
    check_entry,
    note_use,
    token_scopes,
    usable_personal_token,
)
from control_plane.tokens.support_access import (
    SupportAccessRefused,
    record_staff_access,
    staff_entry,
)
from orgplane_wire.contract import ROLE_SCOPES, org_audience
from orgplane_wire.jose_header import InvalidToken

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
    if request.subject_token_type not in (ACCESS_TOKEN_TYPE, PERSONAL_TOKEN_TYPE):
        raise OAuthError(
            "invalid_request",
            f"subject_token_type must be {ACCESS_TOKEN_TYPE} (or {PERSONAL_TOKEN_TYPE}).",
        )
    requested = request.requested_token_type or ACCESS_TOKEN_TYPE
    if requested not in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        raise OAuthError("invalid_request", "requested_token_type must be an access_token or jwt.")
    return requested


@dataclass(frozen=True)
class _Subject:
    """Who exchanges: the claims of an access token, or a personal access token."""

    user_id: str
    claims: dict[str, Any] | None = None
    personal: PersonalToken | None = None


async def _subject(runtime: Runtime, db: AsyncSession, request: ExchangeRequest) -> _Subject:
    token = request.subject_token
    if request.subject_token_type == PERSONAL_TOKEN_TYPE or token.startswith(PERSONAL_PREFIX + "_"):
        personal = await usable_personal_token(db, token)
        if personal is None:
            raise _bad_subject(personal=True)
        return _Subject(personal.user_id, personal=personal)
    try:
        claims = await verify_access_token(token, runtime=runtime, db=db)
    except InvalidToken:
        raise _bad_subject() from None
    if await token_denied(runtime.revoked, claims):
        raise _bad_subject()
    return _Subject(claims["sub"], claims=claims)


def _bad_subject(*, personal: bool = False) -> OAuthError:
    # RFC 8693 §2.2.2: an invalid subject_token is answered with invalid_request (a personal
    # access token too: unknown, revoked and expired ones get one answer).
    if personal:
        return OAuthError(
            "invalid_request",
            "The subject_token (a personal access token) is unknown, revoked or expired.",
            orgplane_code="personal_token_invalid",
        )
    return OAuthError("invalid_request", "The subject_token is invalid or expired.")


def _resource_host(resource: str) -> str:
    try:
        parts = urlsplit(resource)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        host, parts = "", None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise OAuthError("invalid_target", "resource must be an absolute http(s) URL.")
    return host


async def _resource_ref(runtime: Runtime, db: AsyncSession, resource: str) -> str | None:
    host = _resource_host(resource)
    query = select(Domain.org_id).where(col(Domain.hostname) == host, col(Domain.verified))
    org_id = (await db.exec(query)).first()
    if org_id is not None:
        return org_id
    base = runtime.settings.provisioning.base_domain.strip(".").lower()
    label = host.removesuffix("." + base)
    return label if label != host and label and "." not in label else None


def _audience_ref(audience: str) -> str | None:
    if audience.startswith("org:") and len(audience) > 4:
        return audience[4:]
    urn_prefix = org_audience("")
    if audience.startswith(urn_prefix) and len(audience) == len(urn_prefix) + 32:
        return audience.removeprefix(urn_prefix)
    return None


async def target_ref(runtime: Runtime, db: AsyncSession, request: ExchangeRequest) -> str:
    """The id or slug of the one org the request names, or ``invalid_target``."""
    targets = [*request.audience, *request.resource]
    if not targets:
        raise OAuthError("invalid_request", "Name the org with audience=org:<slug> or resource.")
    if len(targets) > 1:
        raise OAuthError("invalid_target", "An org token is for exactly one org.")
    if len(targets[0]) > MAX_TARGET_LENGTH:
        raise OAuthError("invalid_target", NO_SUCH_ORG)
    if request.audience:
        ref = _audience_ref(request.audience[0])
    else:
        ref = await _resource_ref(runtime, db, request.resource[0])
    if not ref:
        raise OAuthError("invalid_target", NO_SUCH_ORG)
    return ref


def _load_statement(*, id_shaped: bool) -> Any:
    by_slug = col(Org.slug) == bindparam("slug", type_=String)
    user_id = bindparam("user_id", type_=String)
    by_ref = or_(col(Org.id) == bindparam("ref", type_=String), by_slug) if id_shaped else by_slug
    return (
        select(Org, User, Membership.role, catalogue_column())
        .select_from(Org)
        .join(User, col(User.id) == user_id)
        .outerjoin(
            Membership,
            and_(col(Membership.org_id) == col(Org.id), col(Membership.user_id) == user_id),
        )
        .where(by_ref, live_orgs())
        .limit(2)
    )


# Built once: the exchange is hot, and building a statement costs more than running it.
_LOAD_BY_SLUG = _load_statement(id_shaped=False)
_LOAD_BY_ID_OR_SLUG = _load_statement(id_shaped=True)


@dataclass(frozen=True)
class _Loaded:
    org: Org
    user: User
    #: The user's own role in the org (None: not a member).
    role: str | None
    catalogue: dict[str, Feature]


async def _load(db: AsyncSession, *, ref: str, user_id: str) -> _Loaded:
    """The live org ``ref`` (id or slug), the user, their direct role and the feature catalogue,
    in one query.

    Orgs are found as ``find_live_org`` finds them (an id-shaped ref is tried as an id first).
    """
    params = {"ref": ref, "slug": ref.lower(), "user_id": user_id}
    statement = _LOAD_BY_ID_OR_SLUG if len(ref) == 32 else _LOAD_BY_SLUG
    rows = sorted((await db.exec(statement, params=params)).all(), key=lambda row: row[0].id != ref)
    if rows:
        org, user, role, catalogue = rows[0]
        return _Loaded(org, user, role, catalogue_from(catalogue))
    user = await db.get(User, user_id)
    if user is None or user.disabled:
        raise _bad_subject()
    raise OAuthError("invalid_target", NO_SUCH_ORG)


async def _refuse_unusable(db: AsyncSession, org: Org) -> None:
    # Only callers who may see the org get here, so naming its state leaks nothing.
    if org.suspended:
        raise OAuthError("invalid_target", "The org is suspended.")
    if org.delete_after is not None:
        raise OAuthError("invalid_target", "The org is pending deletion.")
    held = await ancestor_hold(db, org)
    if held:
        raise OAuthError("invalid_target", f"The org is suspended: {held}.")


def _scope(allowed: tuple[str, ...], requested: str | None, *, personal: bool) -> str:
    if not allowed:  # only a personal access token narrows a role's scopes to nothing
        raise OAuthError(
            "invalid_scope",
            "This personal access token carries none of the scopes your role allows here.",
        )
    if not requested:
        return " ".join(allowed)
    wanted = set(requested.split())
    if not wanted <= set(allowed):
        who = "This personal access token and your role allow" if personal else "Your role allows"
        raise OAuthError("invalid_scope", f"{who} at most: {' '.join(allowed)}.")
    return " ".join(s for s in allowed if s in wanted)


async def exchange_token(
    runtime: Runtime, db: AsyncSession, *, request: ExchangeRequest, now: datetime | None = None
) -> ExchangedToken:
    """Issue an org token for the subject of ``request``; raises :class:`OAuthError`."""
    issued_type = _issued_type(request)
    subject = await _subject(runtime, db, request)
    personal = subject.personal
    loaded = await _load(db, ref=await target_ref(runtime, db, request), user_id=subject.user_id)
    org, user, direct_role = loaded.org, loaded.user, loaded.role
    if user.disabled or (subject.claims is not None and not session_current(subject.claims, user)):
        raise _bad_subject(personal=personal is not None)
    # A root org's role is the membership's; below a parent, admins of ancestors count too.
    role = direct_role if org.parent_id is None else await org_role(db, user, org)
    if role is None and (personal is not None or not user.is_platform_admin):
        raise OAuthError("invalid_target", NO_SUCH_ORG)  # no staff entry with a personal token
    await _refuse_unusable(db, org)
    features = await effective_features(db, org, user_id=user.id, catalogue=loaded.catalogue)
    if personal is not None:
        check_entry(personal, org.id, features)
    amr = subject_amr(subject.claims, personal)
    check_mfa(org, amr, staff=role is None)
    if role is not None:
        check_sso(org, amr, platform_admin=user.is_platform_admin)
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
    allowed = ROLE_SCOPES.get(role, ())
    if personal is not None:
        allowed = token_scopes(personal, role)
    scope = _scope(allowed, request.scope, personal=personal is not None)
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
        "features": features,
        "amr": amr,
    }
    if staff_reason is not None:
        claims["act"] = {"sub": user.id, "email": user.email}
    ttl = runtime.settings.tokens.org_token_ttl
    token, full = sign(claims, await runtime.keyring.signing_key(db), ttl=ttl)
    if staff_reason is not None:
        record_staff_access(
            db,
            staff=user,
            org=org,
            reason=staff_reason,
            approval=approval,
            jti=full["jti"],
            ip=request.ip,
        )
        await db.commit()
    if personal is not None:
        await note_use(db, personal)
    return ExchangedToken(token, issued_type, ttl, scope, full)
