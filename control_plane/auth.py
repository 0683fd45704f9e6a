"""Who is calling: the principal behind a request, from a Bearer token or the session cookie.

Both paths verify the same control-plane access token; the UI keeps it in an HttpOnly cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from litestar import Request
from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import User
from control_plane.logs import bind_request
from control_plane.runtime import Runtime, RuntimeDep
from control_plane.signing.jws import unverified_kid, verify
from control_plane.signing.revocation import token_usable
from control_plane.webhooks.signals import claimed_subject, count_refusal
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.problems import Forbidden, Unauthenticated

SESSION_COOKIE = "orgplane_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """An authenticated, enabled user and the claims of the token they presented."""

    user: User
    claims: dict[str, Any]

    @property
    def is_platform_admin(self) -> bool:
        """Internal staff with platform-wide rights."""
        return self.user.is_platform_admin


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def verify_access_token(token: str, *, runtime: Runtime, db: AsyncSession) -> dict[str, Any]:
    """Claims of a valid control-plane access token; raises InvalidToken."""
    kid = unverified_kid(token)
    public_key = await runtime.keyring.public_key(db, kid)
    if public_key is None:
        raise InvalidToken("unknown key id")
    claims = verify(token, public_key, issuer=runtime.issuer, audience=runtime.audience)
    if claims.get("token_use") != "access":
        raise InvalidToken("not an access token")
    return claims


async def provide_principal(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    db: NamedDependency[AsyncSession],
) -> Principal:
    """Dependency: the authenticated caller, or 401 ``invalid_token``.

    The session cookie authenticates the UI (whose forms carry a CSRF token) and safe API
    reads; an API write must carry a Bearer token, so a page on a sibling subdomain cannot make
    the browser write through the API with the cookie (SameSite=Lax does not stop that).
    """
    token = bearer_token(request)
    if token is None and (request.method in SAFE_METHODS or request.url.path.startswith("/ui")):
        token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthenticated("Sign in or send a Bearer access token.", code="unauthenticated")
    try:
        claims = await verify_access_token(token, runtime=runtime, db=db)
    except InvalidToken as exc:
        if not isinstance(exc.__cause__, jwt.ExpiredSignatureError):  # forged or malformed
            ip = request.client.host if request.client else "unknown"
            subject = claimed_subject(token)
            await count_refusal(runtime, kind="forged_token", ip=ip, user_id=subject)
        raise Unauthenticated(
            "The access token is invalid or expired.", code="invalid_token"
        ) from None
    user = await db.get(User, claims["sub"])
    if user is None or not await token_usable(runtime.revoked, claims, user):
        raise Unauthenticated("The access token is invalid or expired.", code="invalid_token")
    bind_request(user_id=user.id)
    return Principal(user=user, claims=claims)


def require_platform_admin(principal: Principal) -> None:
    """Refuse anyone but platform admins (their own staff endpoints only)."""
    if not principal.is_platform_admin:
        raise Forbidden("Only platform admins may do this.", code="platform_admin_required")
