"""The JWS layer: our faster base64url segment check keeps PyJWT's rules exactly."""

from __future__ import annotations

import jwt
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.api_jws import PyJWS

from control_plane.signing.jws import unverified_kid
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.jws import JWT, decode_segment

SEGMENT_BYTES = st.binary(max_size=40) | st.text(
    alphabet="ABCXYZabcxyz0189-_=+/!. \u00e9", max_size=40
).map(str.encode)


def _outcome(check: object, segment: bytes) -> bytes | str:
    try:
        return check(segment, "header")  # type: ignore[operator,no-any-return]
    except jwt.DecodeError:
        return "refused"


@settings(max_examples=600, deadline=None)
@given(SEGMENT_BYTES)
def test_segment_check_agrees_with_pyjwt(segment: bytes) -> None:
    assert _outcome(decode_segment, segment) == _outcome(PyJWS._decode_base64url_segment, segment)


def test_the_verifier_uses_the_faster_check() -> None:
    # The override names a private PyJWT method: if PyJWT renames it, this fails first.
    jws_class = type(JWT._jws)
    assert issubclass(jws_class, PyJWS)
    assert "_decode_base64url_segment" in vars(PyJWS)
    assert jws_class._decode_base64url_segment is not PyJWS._decode_base64url_segment
    assert jws_class._decode_base64url_segment(b"e30", "header") == b"{}"


def test_unverified_kid_refuses_before_any_key_is_needed() -> None:
    for token in ("", "a.b", "a.b.c.d", "e30.e30.", "x" * 9000, "\ud800.e30.e30"):
        try:
            unverified_kid(token)
        except InvalidToken:
            continue
        raise AssertionError(f"accepted {token[:20]!r}")
