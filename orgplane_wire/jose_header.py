"""The checks of a token's JOSE header that need no key, the same on both services.

Every token either service verifies passes :func:`check_header` before a key is looked up, so a
forged or odd token costs no key lookup, no JWKS fetch and no signature check:

- at most ``max_bytes`` long, three segments (a compact JWS);
- a header that is a base64url JSON object under PyJWT's segment rules (:func:`decode_segment`);
- ``alg`` in :data:`~orgplane_wire.contract.ALLOWED_ALGORITHMS` (never ``none``, never HS*);
- ``typ`` ``at+jwt`` (RFC 9068), optionally as ``application/at+jwt``;
- no ``crit``: we understand no header extension, so RFC 7515 §4.1.11 requires refusing any;
- a ``kid`` of 1 to 64 characters from ``[A-Za-z0-9._-]``.

``jku``, ``x5u``, ``jwk`` and ``x5c`` are never looked at: keys come only from the control
plane's own table or JWKS. This module imports only the standard library, so an instance checks
headers without loading PyJWT (which it loads with the first key, :mod:`orgplane_wire.jws`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import NamedTuple

from orgplane_wire.contract import ALLOWED_ALGORITHMS, TOKEN_TYP

MAX_TOKEN_BYTES = 8192
KID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TYPS = (TOKEN_TYP, f"application/{TOKEN_TYP}")
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")


class InvalidToken(Exception):
    """The token is malformed, forged, expired or meant for someone else.

    Its ``reason`` is for logs, never for clients, who see only the stable code.
    """

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SegmentError(ValueError):
    """A JWS segment that is not canonical base64url."""


class Header(NamedTuple):
    """What a verifier needs from a header that passed :func:`check_header`."""

    kid: str
    alg: str


def decode_segment(segment: bytes, name: str) -> bytes:
    """A base64url JWS segment decoded, under PyJWT's rules: at most two ``=`` of correct
    padding, nothing outside the alphabet, and the canonical encoding of what it decodes to.
    Raises :class:`SegmentError`.
    """
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or not _BASE64URL.fullmatch(stripped)
    ):
        raise SegmentError(f"Invalid {name} padding")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (TypeError, binascii.Error) as exc:
        raise SegmentError(f"Invalid {name} padding") from exc
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise SegmentError(f"Invalid {name} padding")
    return decoded


def check_header(token: str, *, max_bytes: int = MAX_TOKEN_BYTES) -> Header:
    """The ``kid`` and ``alg`` of ``token`` after every check that needs no key (see the module
    docstring); raises :class:`InvalidToken`."""
    if not isinstance(token, str) or not 0 < len(token) <= max_bytes:
        raise InvalidToken("token missing or too long")
    if token.count(".") != 2:
        raise InvalidToken("not a compact JWS")
    try:
        header = json.loads(decode_segment(token.split(".", 1)[0].encode(), "header"))
    except (ValueError, UnicodeError, RecursionError):
        raise InvalidToken("malformed header") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise InvalidToken("algorithm not allowed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _TYPS:
        raise InvalidToken("wrong token type")
    if "crit" in header:
        raise InvalidToken("critical header extensions are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise InvalidToken("bad key id")
    return Header(kid, alg)
