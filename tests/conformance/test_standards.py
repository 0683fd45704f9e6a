"""The control plane's standards, as independent libraries and plain HTTP check them.

Seen failing before: authlib's ``validate()`` raised ``"response_types_supported" is required``
(the list was empty); ``/.well-known/openid-configuration`` answered 200 without the
``authorization_endpoint`` OpenID Connect Discovery requires (it is served again since the
control plane is an OpenID provider, and authlib's OpenID metadata model validates it, RS256
included); control-plane 401s carried no ``WWW-Authenticate`` at all.
"""

from __future__ import annotations

import re

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conformance.conftest import Platform

#: RFC 7235 challenge: a scheme, then comma-separated auth-params (token or quoted-string).
_PARAM = re.compile(r'([A-Za-z0-9_\-]+)=("(?:[^"\\]|\\.)*"|[^\s,]+)')


def challenge(header: str) -> tuple[str, dict[str, str]]:
    """(scheme, params) of a single ``WWW-Authenticate`` challenge."""
    scheme, _, rest = header.partition(" ")
    return scheme, {k.lower(): v.strip('"') for k, v in _PARAM.findall(rest)}


def test_rfc8414_metadata_validates_with_authlib(platform: Platform) -> None:
    answer = httpx.get(platform.cp.url + "/.well-known/oauth-authorization-server")
    assert answer.status_code == 200, answer.text
    metadata = AuthorizationServerMetadata(answer.json())
    metadata.validate()
    assert metadata.issuer == platform.cp.url
    assert metadata["authorization_endpoint"] == platform.cp.url + "/oauth/authorize"


def test_rfc8414_metadata_leads_to_keys_that_verify_an_access_token(platform: Platform) -> None:
    metadata = httpx.get(platform.cp.url + "/.well-known/oauth-authorization-server").json()
    keys = KeySet.import_key_set(httpx.get(metadata["jwks_uri"]).json())
    token = jwt.decode(platform.access_token, keys)
    assert token.claims["iss"] == metadata["issuer"]


def test_openid_configuration_validates_with_authlib(platform: Platform) -> None:
    """OpenID Connect Discovery 1.0 §3, as authlib's model checks it (RS256 must be offered)."""
    answer = httpx.get(platform.cp.url + "/.well-known/openid-configuration")
    assert answer.status_code == 200, answer.text
    metadata = OpenIDProviderMetadata(answer.json())
    metadata.validate()
    assert metadata["issuer"] == platform.cp.url
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]


def operations(platform: Platform) -> list[tuple[str, str]]:
    """Every operation of the control plane's OpenAPI document, path parameters filled in."""
    document = httpx.get(platform.cp.url + "/api/schema/openapi.json").json()
    org = platform.instance.org["org_id"]
    found = []
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{org_(id|ref)\}", org, path)
        concrete = re.sub(r"\{[^}]+\}", "x", concrete)
        found += [
            (m.upper(), concrete) for m in item if m in ("get", "post", "put", "patch", "delete")
        ]
    return found


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "opi_x.y"])
def test_every_401_challenges_bearer(platform: Platform, token: str) -> None:
    """Every operation, without a token and with bad ones: each 401 carries ``Bearer``, with
    ``error="invalid_token"`` exactly when a token was presented (RFC 6750 §3, §3.1)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    refused = 0
    with httpx.Client(base_url=platform.cp.url, headers=headers, timeout=10) as client:
        for method, path in operations(platform):
            if path.startswith("/oauth/"):
                continue  # RFC 6749 errors (see the invalid_client test)
            answer = client.request(method, path, json={} if method != "GET" else None)
            if answer.status_code != 401:
                continue
            refused += 1
            where = f"{method} {path}"
            assert "www-authenticate" in answer.headers, where
            scheme, params = challenge(answer.headers["www-authenticate"])
            assert scheme == "Bearer", where
            assert params.get("error") == ("invalid_token" if token else None), (where, params)
            assert answer.headers["content-type"] == "application/problem+json", where
    assert refused >= 40, f"only {refused} operations answered 401"


def test_ui_status_poll_401_is_a_problem_with_a_challenge(platform: Platform) -> None:
    """The UI's polled ``instance.json`` answered ``{"status": "signed_out"}`` without a
    challenge; now a problem like every other 401."""
    slug = platform.instance.org["slug"]
    answer = httpx.get(f"{platform.cp.url}/ui/orgs/{slug}/instance.json")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert challenge(answer.headers["www-authenticate"])[0] == "Bearer"


def test_failed_login_carries_a_challenge(platform: Platform) -> None:
    answer = httpx.post(
        platform.cp.url + "/api/v1/auth/login",
        json={"email": "nobody@conform.test", "password": "wrong password"},
    )
    assert answer.status_code == 401, answer.text
    assert challenge(answer.headers["www-authenticate"])[0] == "Bearer"


def test_token_endpoint_invalid_client_challenges_basic(platform: Platform) -> None:
    """RFC 6749 §5.2: ``invalid_client`` answers 401 with the scheme the client used."""
    answer = httpx.post(
        platform.cp.url + "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=("someone-else", "secret"),
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    assert challenge(answer.headers["www-authenticate"])[0] == "Basic"
