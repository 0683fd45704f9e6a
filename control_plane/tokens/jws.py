"""Signing and verifying the control plane's JWTs (PyJWT), with a strict algorithm allowlist.

Verification is on every API request, so its cost matters (``benchmarks/bench_tokens.py``):
PyJWT 2.15 checks each base64url segment's alphabet one character at a time in Python, which
costs more than the ECDSA verification itself. :class:`_SegmentCheckedJWS` applies the same
rules with one regular expression, and the header is decoded once to find the key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from typing import Any

import jwt
from jwt.api_jws import PyJWS

from control_plane.tokens.keys import LoadedKey
from org_instance.contract import ALLOWED_ALGORITHMS, TOKEN_TYP

MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The token is malformed, forged, expired or meant for someone else."""


_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")


def decode_segment(segment: bytes, name: str) -> bytes:
    """A base64url JWS segment decoded, under PyJWT's rules: at most two ``=`` of correct
    padding, nothing outside the alphabet, and the canonical encoding of what it decodes to.
    """
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or not _BASE64URL.fullmatch(stripped)
    ):
        raise jwt.DecodeError(f"Invalid {name} padding")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (TypeError, binascii.Error) as exc:
        raise jwt.DecodeError(f"Invalid {name} padding") from exc
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise jwt.DecodeError(f"Invalid {name} padding")
    return decoded


class _SegmentCheckedJWS(PyJWS):
    """PyJWS with :func:`decode_segment` for its segment check (same rules, faster)."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        return decode_segment(segment, name)


class _Verifier(jwt.PyJWT):
    """PyJWT whose JWS layer is :class:`_SegmentCheckedJWS`."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _SegmentCheckedJWS(options=self._get_sig_options())


_VERIFIER = _Verifier()


def sign(claims: dict[str, Any], key: LoadedKey, *, ttl: int) -> tuple[str, dict[str, Any]]:
    """A signed JWT with ``iat``/``nbf``/``exp``/``jti`` added; returns it and its claims."""
    now = int(time.time())
    full = {"iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex, **claims}
    token = jwt.encode(
        full, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": TOKEN_TYP}
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
        claims: dict[str, Any] = _VERIFIER.decode(
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
