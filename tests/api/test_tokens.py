"""Discovery, the JWKS, login tokens and the refresh grant of ``POST /oauth/token``."""

from __future__ import annotations

import base64
from typing import Any

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import AuditEvent
from tests.support.api import add_user, direct_db
from tests.support.tokens import TOKEN_URL, login_body

ISSUER = "http://127.0.0.1:8080"


async def test_discovery_names_issuer_jwks_and_token_endpoint(
    client: AsyncTestClient[Any],
) -> None:
    oauth = (await client.get("/.well-known/oauth-authorization-server")).json()
    answer = await client.get("/.well-known/openid-configuration")
    assert answer.status_code == 200, answer.text
    oidc = answer.json()
    # The OpenID document is the RFC 8414 one with the OpenID fields added: they never disagree.
    assert {k: v for k, v in oidc.items() if k in oauth and k != "claims_supported"} == {
        k: v for k, v in oauth.items() if k != "claims_supported"
    }
    assert set(oauth["claims_supported"]) < set(oidc["claims_supported"])
    for meta in (oauth, oidc):
        assert meta["issuer"] == ISSUER
        assert meta["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
        assert meta["token_endpoint"] == f"{ISSUER}/oauth/token"
        assert meta["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
        assert set(meta["grant_types_supported"]) == {
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        }
        assert meta["response_types_supported"] == ["code"]
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert meta["token_endpoint_auth_methods_supported"] == [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ]
        # No client JWTs: nothing claims them.
        assert "token_endpoint_auth_signing_alg_values_supported" not in meta
    assert "id_token_signing_alg_values_supported" not in oauth
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert oidc["userinfo_endpoint"] == f"{ISSUER}/oauth/userinfo"
    assert oidc["subject_types_supported"] == ["public"]


async def test_jwks_is_public_cacheable_and_verifies_the_login_token(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "ann@example.com")
    body = await login_body(client, "ann@example.com")
    answer = await client.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=300"
    keys = answer.json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert key["alg"] == "ES256"
    assert "d" not in key, "the JWKS must carry public members only"
    header = jwt.get_unverified_header(body["access_token"])
    assert header == {"alg": "ES256", "kid": key["kid"], "typ": "at+jwt"}
    claims = jwt.decode(
        body["access_token"], jwt.PyJWK(key), algorithms=["ES256"], audience=ISSUER, issuer=ISSUER
    )
    assert claims["exp"] - claims["iat"] == 900
    assert claims["token_use"] == "access"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: AsyncTestClient[Any],
) -> None:
    user_id = await add_user(client, "bo@example.com")
    first = await login_body(client, "bo@example.com")
    refreshed = await client.post(
        TOKEN_URL,
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "orgplane",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"] == "no-store"
    second = refreshed.json()
    assert second["token_type"] == "Bearer"
    assert second["expires_in"] == 900
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == user_id

    reuse = await client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    after_reuse = await client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    )
    assert after_reuse.status_code == 400, "reuse must revoke the whole family"
    assert after_reuse.json()["error"] == "invalid_grant"

    async with direct_db(client) as db:
        events = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "auth.refresh_reuse"))
        ).all()
    assert [e.target_id for e in events] == [user_id, user_id]
    assert all(first["refresh_token"] not in str(e.detail) for e in events)


async def test_logout_revokes_the_refresh_token(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "cy@example.com")
    body = await login_body(client, "cy@example.com")
    out = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": body["refresh_token"]},
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert out.status_code == 200, out.text
    again = await client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert again.json()["error"] == "invalid_grant"


async def test_token_endpoint_answers_oauth_errors(client: AsyncTestClient[Any]) -> None:
    def expect(answer: Any, status: int, error: str) -> None:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json()["error"] == error
        assert answer.json()["error_description"]

    expect(
        await client.post(TOKEN_URL, json={"grant_type": "refresh_token"}), 400, "invalid_request"
    )
    expect(await client.post(TOKEN_URL, data={}), 400, "invalid_request")
    expect(
        await client.post(TOKEN_URL, data={"grant_type": "password", "username": "a"}),
        400,
        "unsupported_grant_type",
    )
    expect(
        await client.post(TOKEN_URL, data={"grant_type": "refresh_token"}), 400, "invalid_request"
    )
    repeated = await client.post(
        TOKEN_URL,
        content=b"grant_type=refresh_token&refresh_token=a&refresh_token=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    expect(repeated, 400, "invalid_request")
    expect(
        await client.post(
            TOKEN_URL,
            data={"grant_type": "refresh_token", "refresh_token": "opr_x", "client_id": "evil"},
        ),
        401,
        "invalid_client",
    )
    expect(
        await client.post(
            TOKEN_URL,
            data={"grant_type": "refresh_token", "refresh_token": "opr_x", "client_secret": "s"},
        ),
        401,
        "invalid_client",
    )
    basic = base64.b64encode(b"orgplane:secret").decode()
    with_secret = await client.post(
        TOKEN_URL,
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "refresh_token", "refresh_token": "x"},
    )
    expect(with_secret, 401, "invalid_client")
    assert with_secret.headers["www-authenticate"].startswith("Basic")
    public_basic = base64.b64encode(b"orgplane:").decode()
    expect(
        await client.post(
            TOKEN_URL,
            headers={"Authorization": f"Basic {public_basic}"},
            data={"grant_type": "refresh_token", "refresh_token": "opr_x"},
        ),
        400,
        "invalid_grant",
    )
    for junk in ("opr_" + "A" * 43, "x" * 500, "opr_\u00e9\u0000", ""):
        answer = await client.post(
            TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": junk}
        )
        expect(answer, 400, "invalid_request" if not junk else "invalid_grant")
