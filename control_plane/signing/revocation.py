"""Ending control-plane access tokens before they expire.

Access tokens are JWTs checked without a database row of their own, so two marks end them
early:

* **Session version.** A password change bumps ``User.session_version``; access tokens carry
  the version they were issued under (``sv``), and a token whose ``sv`` is not the user's
  current one is refused. The user row is read on every request anyway, so this costs nothing.
  Tokens issued before ``sv`` existed count as version 1.
* **Denied ``jti``.** Logout denies the presented access token's ``jti`` in the ``revoked``
  store until the token would have expired anyway (memory in embedded mode, Redis shared by
  every replica otherwise): one store read per authenticated request, which fails open while
  Redis is down (see :func:`token_denied`).
"""

from __future__ import annotations

import time
from typing import Any, Final

import structlog
from litestar.stores.base import Store
from redis.exceptions import RedisError

from control_plane.db.models import User

JTI_PREFIX: Final = "jti:"

log = structlog.get_logger("orgplane.tokens")


def session_current(claims: dict[str, Any], user: User) -> bool:
    """The token was issued under the user's current session version."""
    version = claims.get("sv", 1)
    return isinstance(version, int) and version == user.session_version


async def deny_access_token(store: Store, claims: dict[str, Any]) -> None:
    """Refuse the token of ``claims`` from now until its ``exp``."""
    remaining = int(claims.get("exp", 0)) - int(time.time())
    jti = claims.get("jti")
    if isinstance(jti, str) and jti and remaining > 0:
        await store.set(JTI_PREFIX + jti, b"1", expires_in=remaining + 1)


async def token_denied(store: Store, claims: dict[str, Any]) -> bool:
    """Whether the token of ``claims`` was revoked (logout).

    Fails open: while Redis is unreachable a revoked token counts as not revoked (it still
    expires within ``access_token_ttl``), so a Redis outage does not stop every authenticated
    request; logging out, which writes the mark, answers 503 ``redis_unavailable`` then."""
    jti = claims.get("jti")
    if not isinstance(jti, str):
        return False
    try:
        return await store.exists(JTI_PREFIX + jti)
    except RedisError:
        log.warning("revocation store unreachable; revoked access tokens are not checked")
        return False


async def token_usable(store: Store, claims: dict[str, Any], user: User | None) -> bool:
    """The token's user exists, is enabled, and neither mark ended the token."""
    return (
        user is not None
        and not user.disabled
        and session_current(claims, user)
        and not await token_denied(store, claims)
    )
