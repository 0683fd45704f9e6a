"""Our access and org tokens verify with joserfc (an independent JOSE library, not PyJWT)
against the JWKS we serve, with RFC 9068's ``typ`` and the claims the contract names."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidClaimError
from joserfc.jwk import KeySet

from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from tests.interop.conftest import ISSUER

# RFC 9864 deprecates the polymorphic "EdDSA" name (for "Ed25519"); we still sign with it, as
# PyJWT and the org instances expect (see docs/tokens.md).
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


async def _keyset(client: Any) -> KeySet:
    meta = (await client.get("/.well-known/oauth-authorization-server")).json()
    jwks_path = meta["jwks_uri"].removeprefix(ISSUER)
    return KeySet.import_key_set((await client.get(jwks_path)).json())


async def test_access_token_verifies_with_joserfc(plane: dict[str, Any], signing_alg: str) -> None:
    keys = await _keyset(plane["client"])
    token = jwt.decode(plane["login"]["access_token"], keys, algorithms=[signing_alg])
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == signing_alg
    jwt.JWTClaimsRegistry(
        now=int(time.time()),
        leeway=30,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": ISSUER},
        sub={"essential": True, "value": plane["user_id"]},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    ).validate(token.claims)


async def test_org_token_verifies_with_joserfc(plane: dict[str, Any], signing_alg: str) -> None:
    answer = await plane["client"].post(
        "/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": plane["login"]["access_token"],
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": "org:acme",
        },
    )
    assert answer.status_code == 200, answer.text
    keys = await _keyset(plane["client"])
    token = jwt.decode(answer.json()["access_token"], keys, algorithms=[signing_alg])
    audience = f"urn:orgplane:org:{plane['org_id']}"
    registry = jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": audience},
        org_id={"essential": True, "value": plane["org_id"]},
        org_slug={"essential": True, "value": "acme"},
        org_role={"essential": True, "value": "owner"},
        exp={"essential": True},
        nbf={"essential": True},
        jti={"essential": True},
    )
    registry.validate(token.claims)
    assert "beta_search" in token.claims["features"]
    with pytest.raises(InvalidClaimError):
        jwt.JWTClaimsRegistry(aud={"essential": True, "value": ISSUER}).validate(token.claims)


async def test_joserfc_rejects_a_tampered_token(plane: dict[str, Any], signing_alg: str) -> None:
    keys = await _keyset(plane["client"])
    head, payload, sig = plane["login"]["access_token"].split(".")
    tampered = f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{sig}"
    with pytest.raises((BadSignatureError, ValueError)):
        jwt.decode(tampered, keys, algorithms=[signing_alg])
