"""PyJWT with a faster segment check; both services verify their tokens through it.

Verification runs on every request, so its cost matters (``benchmarks/bench_tokens.py``):
PyJWT 2.x checks each base64url segment's alphabet one character at a time in Python, which
costs more than the ECDSA verification itself. :class:`SegmentCheckedJWT` is PyJWT with the
same rules applied by one regular expression (:func:`decode_segment`); everything else (the
signature, the registered claims, leeway, required claims) is PyJWT's own code. The checks of
the header that need no key are :func:`orgplane_wire.jose_header.check_header`, which both
services run first.
"""

from __future__ import annotations

import jwt
from jwt.api_jws import PyJWS

from orgplane_wire import jose_header


def decode_segment(segment: bytes, name: str) -> bytes:
    """:func:`orgplane_wire.jose_header.decode_segment`, refusing as PyJWT does
    (``jwt.DecodeError``)."""
    try:
        return jose_header.decode_segment(segment, name)
    except jose_header.SegmentError as exc:
        raise jwt.DecodeError(str(exc)) from None


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
