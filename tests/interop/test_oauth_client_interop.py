"""Authlib's OAuth 2.0 client (an independent implementation) drives our token endpoint:
discovery, the refresh grant and RFC 8693 token exchange, with our errors parsed as OAuth's."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from tests.interop.conftest import ISSUER

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")  # see docs/tokens.md

with warnings.catch_warnings():
    # Authlib 1.9 nudges towards its httpx2 integration; this one is the httpx we ship with.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client


def _oauth_client(plane: dict[str, Any]) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id="orgplane",
        token_endpoint_auth_method="none",
        transport=plane["transport"],
        base_url=ISSUER,
    )


async def test_authlib_refreshes_and_exchanges(plane: dict[str, Any], signing_alg: str) -> None:
    async with _oauth_client(plane) as oauth:
        meta = (
            await oauth.request(
                "GET", "/.well-known/oauth-authorization-server", withhold_token=True
            )
        ).json()
        endpoint = meta["token_endpoint"]
        refreshed = await oauth.refresh_token(
            endpoint, refresh_token=plane["login"]["refresh_token"]
        )
        assert refreshed["token_type"] == "Bearer"
        assert refreshed["refresh_token"] != plane["login"]["refresh_token"]
        exchanged = await oauth.fetch_token(
            endpoint,
            grant_type=TOKEN_EXCHANGE_GRANT,
            subject_token=refreshed["access_token"],
            subject_token_type=ACCESS_TOKEN_TYPE,
            audience="org:acme",
        )
        assert exchanged["issued_token_type"] == ACCESS_TOKEN_TYPE
        assert exchanged["token_type"] == "Bearer"
        assert exchanged["expires_in"] == 300
        keys = KeySet.import_key_set(
            (await oauth.request("GET", meta["jwks_uri"], withhold_token=True)).json()
        )
        claims = jwt.decode(exchanged["access_token"], keys, algorithms=[signing_alg]).claims
        assert claims["org_slug"] == "acme"
        assert claims["sub"] == plane["user_id"]


async def test_authlib_sees_oauth_errors(plane: dict[str, Any]) -> None:
    async with _oauth_client(plane) as oauth:
        with pytest.raises(OAuthError) as unknown:
            await oauth.fetch_token(
                "/oauth/token",
                grant_type=TOKEN_EXCHANGE_GRANT,
                subject_token=plane["login"]["access_token"],
                subject_token_type=ACCESS_TOKEN_TYPE,
                audience="org:nowhere",
            )
        assert unknown.value.error == "invalid_target"
        await oauth.refresh_token("/oauth/token", refresh_token=plane["login"]["refresh_token"])
        with pytest.raises(OAuthError) as reused:
            await oauth.refresh_token("/oauth/token", refresh_token=plane["login"]["refresh_token"])
        assert reused.value.error == "invalid_grant"
