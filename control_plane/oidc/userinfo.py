"""``GET``/``POST /oauth/userinfo`` (OpenID Connect Core §5.3): the claims of the user behind a
client's access token, as its scopes allow.

Only an access token this server issued to a client through the code flow (``token_use``
``client_access``) with the ``openid`` scope is taken; the control plane's own session tokens
are not (they are not meant for other applications). The user must still be enabled and the
token not ended by a password change (``sv``), a code replay (denied ``jti``) or the
client's deletion. Refusals are problem+json with the RFC 6750 ``WWW-Authenticate`` challenge
(401 ``invalid_token``, 403 ``insufficient_scope``).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import bearer_token
from control_plane.db.models import OAuthClient, User
from control_plane.deps import DB, RuntimeDep
from control_plane.oidc.token_grant import CLIENT_ACCESS
from control_plane.runtime import Runtime
from control_plane.signing.jws import unverified_kid, verify
from control_plane.signing.revocation import token_usable
from control_plane.tokens.discovery import USERINFO_PATH
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.problems import Forbidden, Unauthenticated

REALM: Final = 'Bearer realm="orgplane"'


class UserInfo(msgspec.Struct, omit_defaults=True):
    """The claims the token's scopes release (OpenID Connect Core §5.1)."""

    sub: str
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None


BAD_TOKEN: Final = "The access token is invalid or expired."


async def _claims(token: str | None, runtime: Runtime, db: AsyncSession) -> tuple[User, set[str]]:
    if not token:
        raise Unauthenticated("Send a Bearer access token.", code="unauthenticated")
    try:
        kid = unverified_kid(token)
        public_key = await runtime.keyring.public_key(db, kid)
        if public_key is None:
            raise InvalidToken("unknown key id")
        claims = verify(token, public_key, issuer=runtime.issuer, audience=runtime.audience)
    except InvalidToken:
        raise Unauthenticated(BAD_TOKEN, code="invalid_token") from None
    user = await db.get(User, claims["sub"])
    usable = claims.get("token_use") == CLIENT_ACCESS and await token_usable(
        runtime.revoked, claims, user
    )
    # A deleted client's tokens end with it.
    client = await db.get(OAuthClient, str(claims.get("client_id", ""))) if usable else None
    if client is None or user is None:
        raise Unauthenticated(BAD_TOKEN, code="invalid_token")
    scopes = set(str(claims.get("scope", "")).split())
    if "openid" not in scopes:
        raise Forbidden(
            "The access token lacks the openid scope.",
            code="insufficient_scope",
            headers={"WWW-Authenticate": REALM + ', error="insufficient_scope"'},
        )
    return user, scopes


def user_claims(user: User, scopes: set[str]) -> UserInfo:
    """The claims ``scopes`` release: ``sub`` always, ``email`` and ``email_verified`` with
    ``email``, ``name`` with ``profile``."""
    claims = UserInfo(sub=user.id)
    if "email" in scopes:
        claims.email = user.email
        claims.email_verified = user.email_verified_at is not None
    if "profile" in scopes:
        claims.name = user.name
    return claims


async def _answer(
    request: Request[Any, Any, Any], runtime: Runtime, db: AsyncSession
) -> Response[UserInfo]:
    user, scopes = await _claims(bearer_token(request), runtime, db)
    return Response(user_claims(user, scopes), headers={"Cache-Control": "no-store"})


@get(USERINFO_PATH, tags=["oauth"])
async def userinfo_get(
    request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB
) -> Response[UserInfo]:
    """The signed-in user's claims for a client's access token (Bearer)."""
    return await _answer(request, runtime, db)


@post(USERINFO_PATH, tags=["oauth"], status_code=200)
async def userinfo_post(
    request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB
) -> Response[UserInfo]:
    """The same as ``GET`` (OpenID Connect Core §5.3.1 allows both)."""
    return await _answer(request, runtime, db)


ROUTES = [userinfo_get, userinfo_post]
