"""The OpenID provider's pure parts: PKCE S256 (RFC 7636 Appendix B), redirect URIs that may
be registered, and where a refused authorization request goes."""

from __future__ import annotations

import pytest

from control_plane.oidc.authorize_request import redirect_with
from control_plane.oidc.clients import check_redirect_uri, check_scopes
from control_plane.oidc.codes import s256, verifier_matches
from orgplane_wire.problems import BadRequest

RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc7636_appendix_b() -> None:
    assert s256(RFC_VERIFIER) == RFC_CHALLENGE
    assert verifier_matches(RFC_VERIFIER, RFC_CHALLENGE)


@pytest.mark.parametrize(
    "verifier",
    [
        None,
        "",
        RFC_VERIFIER[:42],  # too short
        RFC_VERIFIER + "x" * 90,  # too long
        RFC_VERIFIER[:-1] + "!",  # outside the unreserved set
        RFC_CHALLENGE,  # the challenge itself ("plain")
        "A" * 43,
    ],
)
def test_other_verifiers_do_not_match(verifier: str | None) -> None:
    assert not verifier_matches(verifier, RFC_CHALLENGE)


@pytest.mark.parametrize(
    "uri",
    [
        "https://wiki.example/callback",
        "https://wiki.example:8443/cb?tenant=a",
        "http://127.0.0.1:47401/callback",
        "http://localhost/cb",
        "http://[::1]:9000/cb",
    ],
)
def test_registrable_redirect_uris(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://wiki.example/callback",
        "https://wiki.example/cb#x",
        "https://wiki.example/cb#",
        "/callback",
        "javascript:alert(1)",
        "https:///nohost",
        "ftp://wiki.example/",
    ],
)
def test_refused_redirect_uris(uri: str) -> None:
    with pytest.raises(BadRequest) as refused:
        check_redirect_uri(uri)
    assert refused.value.code == "invalid_redirect_uri"


def test_scopes_are_oidc_only_and_deduplicated() -> None:
    assert check_scopes(["openid", "email", "openid"]) == ["openid", "email"]
    with pytest.raises(BadRequest):
        check_scopes(["openid", "orgplane"])


def test_error_redirect_keeps_the_clients_own_query() -> None:
    assert redirect_with("https://a.example/cb", {"error": "x y"}) == (
        "https://a.example/cb?error=x+y"
    )
    assert redirect_with("https://a.example/cb?t=1", {"code": "c"}) == (
        "https://a.example/cb?t=1&code=c"
    )
