"""Signing and verifying the control plane's JWTs (PyJWT), with a strict algorithm allowlist.

Verification is on every API request, so its cost matters (``benchmarks/bench_tokens.py``): it
goes through :data:`org_instance.jws.JWT`, PyJWT with a faster segment check, which the org
instance's verifier uses too.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt

from control_plane.signing.keys import LoadedKey
from org_instance.contract import ALLOWED_ALGORITHMS, TOKEN_TYP
from org_instance.jws import JWT, decode_segment

MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The token is malformed, forged, expired or meant for someone else."""


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
    """The ``kid`` header of a token, after the checks that need no key."""
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token missing or too long")
    try:
        header = json.loads(decode_segment(token.encode().split(b".", 1)[0], "header"))
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict) or token.count(".") != 2:
        raise InvalidToken("malformed token")
    # Any header naming where to fetch a key (jku, x5u, jwk, x5c) is ignored: keys come only
    # from our own table.
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidToken("algorithm not allowed")
    if str(header.get("typ", "")).lower() not in (TOKEN_TYP, f"application/{TOKEN_TYP}"):
        raise InvalidToken("wrong token type")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 64:
        raise InvalidToken("bad key id")
    return kid


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
