"""RFC 7009 token revocation and RFC 7662 token introspection.

``POST /oauth/revoke`` (form: ``token``, ``token_type_hint``): whoever holds a token may end
it. A refresh token revokes its whole family (the login); a control-plane access token or an
org token is denied by ``jti`` until it expires (``signing/revocation.py``); a personal access
token is revoked (``tokens/personal_tokens.py``). The answer is 200
with an empty JSON object whatever the token was (RFC 7009 §2.2: an unknown or invalid token is
not an error, so the endpoint reveals nothing). Clients are public, as at the token endpoint.

``POST /oauth/introspect`` (form: ``token``, ``token_type_hint``) needs a caller: a Bearer
control-plane access token (401 ``invalid_token`` otherwise, RFC 6750). Platform admins may
introspect any token; anyone else only their own (another's answers ``{"active": false}``, as
RFC 7662 §4 advises for a caller not entitled to know). Active means: signed by us, unexpired,
not revoked, its user enabled and, for access tokens, of the user's current session version;
a refresh token is active while unused, unrevoked and unexpired. Answers carry ``Cache-Control:
no-store``.
"""

from __future__ import annotations

from typing import Any

import jwt
from litestar import Request, Response, post
from litestar.status_codes import HTTP_200_OK
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import bearer_token, verify_access_token
from control_plane.client_ip import client_ip
from control_plane.db.models import RefreshToken, User, utcnow
from control_plane.deps import RuntimeDep
from control_plane.runtime import Runtime
from control_plane.signing.jws import unverified_kid, verify
from control_plane.signing.revocation import deny_access_token, token_denied, token_usable
from control_plane.tokens.access import CLIENT_ID, REFRESH_PREFIX, revoke_family_of
from control_plane.tokens.discovery import INTROSPECTION_PATH, REVOCATION_PATH
from control_plane.tokens.grants import OAuthError
from control_plane.tokens.oauth import NO_STORE, oauth_params
from control_plane.tokens.org_revocation import publish_revocation
from control_plane.tokens.personal_tokens import PREFIX as PERSONAL_PREFIX
from control_plane.tokens.personal_tokens import revoke_by_secret
from orgplane_wire.contract import org_audience
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.secret_box import hash_secret

INACTIVE: dict[str, Any] = {"active": False}
#: Claims an introspection answer repeats from an active JWT.
SHOWN = ("scope", "client_id", "sub", "exp", "iat", "nbf", "aud", "iss", "jti", "org_id",
         "org_slug", "org_role", "token_use", "act")  # fmt: skip


def _answer(body: dict[str, Any], status: int = HTTP_200_OK, **headers: str) -> Response[Any]:
    return Response(body, status_code=status, headers={**NO_STORE, **headers})


async def our_jwt(runtime: Runtime, db: AsyncSession, token: str) -> dict[str, Any] | None:
    """The claims of a control-plane access token or an org token we signed and that has not
    expired; None for anything else."""
    try:
        key = await runtime.keyring.public_key(db, unverified_kid(token))
        if key is None:
            return None
        unverified = jwt.decode(token, options={"verify_signature": False})
        if unverified.get("token_use") == "access":
            audience = runtime.audience
        else:
            audience = org_audience(str(unverified.get("org_id", ""))[:64])
        return verify(token, key, issuer=runtime.issuer, audience=audience)
    except (InvalidToken, jwt.PyJWTError, ValueError, TypeError):
        return None


async def _refresh_row(db: AsyncSession, token: str) -> RefreshToken | None:
    if not token.startswith(REFRESH_PREFIX + "_") or len(token) > 200:
        return None
    query = select(RefreshToken).where(col(RefreshToken.token_hash) == hash_secret(token))
    return (await db.exec(query)).first()


@post(REVOCATION_PATH, status_code=HTTP_200_OK, tags=["tokens"])
async def revoke_endpoint(request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[Any]:
    """End a refresh token's login, or an access or org token (RFC 7009)."""
    try:
        params = await oauth_params(request)
        token = params.require("token")
    except OAuthError as exc:
        return _answer(exc.body(), exc.status, **exc.headers)
    action, detail = "auth.revoke", {}
    async with runtime.sessions() as db:
        if token.startswith(REFRESH_PREFIX + "_"):
            family = await revoke_family_of(db, hash_secret(token)) if len(token) <= 200 else None
            user_id = family[1] if family else None
        elif token.startswith(PERSONAL_PREFIX + "_"):
            personal = await revoke_by_secret(db, token)
            user_id = personal.user_id if personal else None
            if personal is not None:
                action = "personal_token.revoke"
                detail = {"target_type": "personal_token", "target_id": personal.id,
                          "name": personal.name, "via": "oauth_revoke"}  # fmt: skip
        else:
            claims = await our_jwt(runtime, db, token)
            if claims is not None:
                await deny_access_token(runtime.revoked, claims)
                if claims.get("org_id"):  # an org token: its instances refuse it now
                    jti, exp = str(claims["jti"]), int(claims["exp"])
                    await publish_revocation(
                        runtime, org_ids=[str(claims["org_id"])], field=f"jti:{jti}", value=exp
                    )
            user_id = str(claims["sub"]) if claims else None
        user = await db.get(User, user_id) if user_id else None
        if user is not None:
            record(db, action=action, actor=user, ip=client_ip(request), **detail)
        await db.commit()
    return _answer({})


async def _caller(runtime: Runtime, db: AsyncSession, request: Request[Any, Any, Any]) -> User:
    token = bearer_token(request)
    try:
        claims = await verify_access_token(token or "", runtime=runtime, db=db)
    except InvalidToken:
        claims = None
    user = await db.get(User, claims["sub"]) if claims else None
    if claims is None or not await token_usable(runtime.revoked, claims, user):
        raise OAuthError(
            "invalid_token",
            "Introspection needs a valid control-plane access token (Bearer).",
            status=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    assert user is not None
    return user


async def introspect(
    runtime: Runtime, db: AsyncSession, *, token: str, caller: User
) -> dict[str, Any]:
    """The RFC 7662 answer about ``token`` for ``caller``."""
    row = await _refresh_row(db, token)
    if row is not None:
        live = row.used_at is None and row.revoked_at is None and row.expires_at > utcnow()
        user = await db.get(User, row.user_id)
        if not live or user is None or user.disabled:
            return INACTIVE
        if not (caller.is_platform_admin or caller.id == row.user_id):
            return INACTIVE
        return {"active": True, "token_type": "refresh_token", "client_id": CLIENT_ID,
                "sub": row.user_id, "exp": int(row.expires_at.timestamp())}  # fmt: skip
    claims = await our_jwt(runtime, db, token)
    if claims is None:
        return INACTIVE
    if not (caller.is_platform_admin or caller.id == claims["sub"]):
        return INACTIVE
    user = await db.get(User, claims["sub"])
    if claims.get("token_use") == "access":
        if not await token_usable(runtime.revoked, claims, user):
            return INACTIVE
    elif await token_denied(runtime.revoked, claims) or (user is not None and user.disabled):
        return INACTIVE
    return {"active": True, "token_type": "Bearer", **{k: claims[k] for k in SHOWN if k in claims}}


@post(INTROSPECTION_PATH, status_code=HTTP_200_OK, tags=["tokens"])
async def introspect_endpoint(
    request: Request[Any, Any, Any], runtime: RuntimeDep
) -> Response[Any]:
    """Whether a token is active, and its claims (RFC 7662); needs a Bearer access token."""
    try:
        async with runtime.readers() as db:
            caller = await _caller(runtime, db, request)
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "Send the token form-encoded.")
            form = await request.form()
            token = form.get("token")
            if not isinstance(token, str) or not token or len(form.getall("token")) > 1:
                raise OAuthError("invalid_request", "The parameter token is required once.")
            body = await introspect(runtime, db, token=token, caller=caller)
    except OAuthError as exc:
        return _answer(exc.body(), exc.status, **exc.headers)
    return _answer(body)


ROUTES = [revoke_endpoint, introspect_endpoint]
