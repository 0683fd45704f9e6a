"""The OpenID provider as an independent client sees it: authlib's OAuth 2 client runs the
authorization-code flow with PKCE against a real control plane over HTTP, validates the
discovery document with authlib's OpenID Provider metadata model and the ID token with
authlib's own JOSE code and the published JWKS, then reads userinfo. The user's part (sign in,
consent) is an HTTP client posting the UI's forms, as a browser without JavaScript would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata

from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.live import serve_control_plane
from tests.support.oidc import (
    REDIRECT_URI,
    callback_params,
    consent,
    follow_to_client,
    register_client,
    ui_sign_in,
)


@pytest.fixture
async def live(make_settings: Any, unused_tcp_port: int) -> AsyncIterator[dict[str, Any]]:
    """A control plane on a real socket, an admin's headers, and a browser-like client signed
    in as ``ann@example.com`` (Ann Example)."""
    settings = make_settings(
        ORGPLANE_PORT=str(unused_tcp_port), ORGPLANE_DEPLOYMENT_ID=f"oidc-{uuid.uuid4().hex[:8]}"
    )
    base = f"http://127.0.0.1:{unused_tcp_port}"
    async with serve_control_plane(settings, unused_tcp_port) as app:
        async with app.state.runtime.sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True
            )
            ann = await create_user(db, email="ann@example.com", password=PASSWORD, name="Ann")
            await db.commit()
        async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
            login = await browser.post(
                "/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            browser.cookies.clear()
            await ui_sign_in(browser, "ann@example.com")
            yield {"base": base, "admin": admin, "browser": browser, "ann": ann.id}


async def provider(base: str) -> OpenIDProviderMetadata:
    async with httpx.AsyncClient(timeout=30) as http:
        document = (await http.get(base + "/.well-known/openid-configuration")).json()
    meta = OpenIDProviderMetadata(document)
    meta.validate()  # OpenID Connect Discovery 1.0 §3, RS256 included
    assert meta["issuer"] == base
    return meta


async def validated_id_token(
    meta: OpenIDProviderMetadata, token: dict[str, Any], *, client_id: str, nonce: str
) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        keys = JsonWebKey.import_key_set((await http.get(meta["jwks_uri"])).json())
    claims = JsonWebToken(meta["id_token_signing_alg_values_supported"]).decode(
        token["id_token"],
        key=keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": meta["issuer"]}},
        claims_params={"nonce": nonce, "client_id": client_id},
    )
    claims.validate(leeway=30)
    assert claims.header["alg"] == "RS256"
    return dict(claims)


async def test_confidential_first_party_client(live: dict[str, Any]) -> None:
    meta = await provider(live["base"])
    async with httpx.AsyncClient(base_url=live["base"], timeout=30) as http:
        created = await register_client(http, live["admin"], first_party=True)
    oauth = AsyncOAuth2Client(
        created["client_id"],
        created["client_secret"],
        scope="openid profile email",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier, nonce = generate_token(64), generate_token(20)
    url, state = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    answer = await follow_to_client(live["browser"], url)  # first party: no consent page
    assert callback_params(answer)["state"] == state
    assert callback_params(answer)["iss"] == meta["issuer"]
    token = await oauth.fetch_token(
        meta["token_endpoint"],
        authorization_response=answer.headers["location"],
        code_verifier=verifier,
    )
    assert token["token_type"] == "Bearer"
    assert "refresh_token" not in token
    claims = await validated_id_token(meta, token, client_id=created["client_id"], nonce=nonce)
    assert claims["sub"] == live["ann"]
    assert claims["aud"] == created["client_id"]
    assert claims["amr"] == ["pwd"]
    assert claims["auth_time"] <= claims["iat"]
    info = await oauth.get(meta["userinfo_endpoint"])
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": live["ann"],
        "email": "ann@example.com",
        "email_verified": True,
        "name": "Ann",
    }
    # The client's access token is for userinfo only, never for the control plane's API.
    api = await oauth.get(live["base"] + "/api/v1/me")
    assert api.status_code == 401, api.text
    await oauth.aclose()


async def test_public_third_party_client_after_consent(live: dict[str, Any]) -> None:
    meta = await provider(live["base"])
    async with httpx.AsyncClient(base_url=live["base"], timeout=30) as http:
        created = await register_client(
            http, live["admin"], public=True, first_party=False, scopes=["openid", "email"]
        )
    assert created["client_secret"] is None
    oauth = AsyncOAuth2Client(
        created["client_id"],
        scope="openid email",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier, nonce = generate_token(64), generate_token(20)
    url, state = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    page = await follow_to_client(live["browser"], url)
    assert page.status_code == 200, page.text
    assert "Allow Wiki?" in page.text
    # The consent page lets its form answer with a redirect to the client, and nowhere else.
    policy = page.headers["content-security-policy"]
    assert "form-action 'self' http://127.0.0.1:47401" in policy
    answer = await consent(live["browser"], page)
    assert callback_params(answer)["state"] == state
    token = await oauth.fetch_token(
        meta["token_endpoint"],
        authorization_response=answer.headers["location"],
        code_verifier=verifier,
    )
    claims = await validated_id_token(meta, token, client_id=created["client_id"], nonce=nonce)
    assert claims["sub"] == live["ann"]
    info = await oauth.post(meta["userinfo_endpoint"])
    assert info.json() == {"sub": live["ann"], "email": "ann@example.com", "email_verified": True}
    await oauth.aclose()


async def test_denied_consent_issues_nothing(live: dict[str, Any]) -> None:
    meta = await provider(live["base"])
    async with httpx.AsyncClient(base_url=live["base"], timeout=30) as http:
        created = await register_client(http, live["admin"], public=True, first_party=False)
    oauth = AsyncOAuth2Client(
        created["client_id"], redirect_uri=REDIRECT_URI, code_challenge_method="S256"
    )
    url, state = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=generate_token(64), scope="openid"
    )
    page = await follow_to_client(live["browser"], url)
    params = callback_params(await consent(live["browser"], page, decision="deny"))
    assert params == {"error": "access_denied", "state": state, "iss": meta["issuer"]}
    await oauth.aclose()
