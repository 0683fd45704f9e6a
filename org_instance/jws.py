"""PyJWT with a faster segment check; both services verify their tokens through it.

Verification runs on every request, so its cost matters (``benchmarks/bench_tokens.py``):
PyJWT 2.x checks each base64url segment's alphabet one character at a time in Python, which
costs more than the ECDSA verification itself. :class:`SegmentCheckedJWT` is PyJWT with the
same rules applied by one regular expression (:func:`decode_segment`); everything else (the
signature, the registered claims, leeway, required claims) is PyJWT's own code.
"""

from __future__ import annotations

import base64
import binascii
import re

import jwt
from jwt.api_jws import PyJWS

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


class SegmentCheckedJWT(jwt.PyJWT):
    """PyJWT whose JWS layer is :class:`_SegmentCheckedJWS`."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _SegmentCheckedJWS(options=self._get_sig_options())


#: The shared instance (stateless after construction).
JWT = SegmentCheckedJWT()
