"""Signing and verifying the control plane's JWTs (PyJWT), with a strict algorithm allowlist.

Verification is on every API request, so its cost matters (``benchmarks/bench_tokens.py``): it
goes through :data:`orgplane_wire.jws.JWT`, PyJWT with a faster segment check, after
:func:`orgplane_wire.jose_header.check_header`; the org instance's verifier runs both too.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from control_plane.signing.keys import LoadedKey
from orgplane_wire.contract import ALLOWED_ALGORITHMS, TOKEN_TYP
from orgplane_wire.jose_header import InvalidToken, check_header
from orgplane_wire.jws import JWT

LEEWAY_SECONDS = 30


def sign(
    claims: dict[str, Any], key: LoadedKey, *, ttl: int, typ: str = TOKEN_TYP
) -> tuple[str, dict[str, Any]]:
    """A signed JWT with ``iat``/``nbf``/``exp``/``jti`` added; returns it and its claims.
    ``typ``: ``at+jwt`` (RFC 9068) for access and org tokens, ``JWT`` for ID tokens."""
    now = int(time.time())
    full = {"iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex, **claims}
    token = jwt.encode(
        full, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ}
    )
    return token, full


def unverified_kid(token: str) -> str:
    """The ``kid`` header of a token, after the checks that need no key: the same
    :func:`~orgplane_wire.jose_header.check_header` an org instance runs (``crit`` refused, the
    ``kid`` pattern, the algorithm allowlist, ``typ``)."""
    return check_header(token).kid


def verify(token: str, public_key: Any, *, issuer: str, audience: str) -> dict[str, Any]:
    """Claims of a token signed by ``public_key`` for ``audience``; raises InvalidToken."""
    try:
        claims: dict[str, Any] = JWT.decode(
            token,
            public_key,
            algorithms=list(ALLOWED_ALGORITHMS),
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
    return claims
