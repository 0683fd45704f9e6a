"""``/api/v1/oauth/clients``: platform admins only, the secret shown once and stored hashed,
exact and safe redirect URIs, audited; deleting a client ends its codes and tokens. The RS256
ID-token key appears with the first client and rotates with the platform's keys."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, AuthorizationCode, OAuthClient, utcnow
from tests.support.api import add_user, assert_problem, direct_db, login, runtime_of
from tests.support.oidc import REDIRECT_URI, callback_params, follow_to_client, register_client

Client = AsyncTestClient[Any]
BODY = {"name": "Wiki", "type": "confidential", "redirect_uris": [REDIRECT_URI]}


async def test_only_platform_admins_manage_clients(client: Client, admin: dict[str, str]) -> None:
    await add_user(client, "dev@example.com")
    dev = await login(client, "dev@example.com")
    for method, path in (
        ("POST", "/api/v1/oauth/clients"),
        ("GET", "/api/v1/oauth/clients"),
        ("DELETE", "/api/v1/oauth/clients/oc-x"),
    ):
        body = BODY if method == "POST" else None
        answer = await client.request(method, path, json=body, headers=dev)
        assert_problem(answer, 403, "platform_admin_required")
        assert_problem(await client.request(method, path, json=body), 401)
    assert_problem(
        await client.delete("/api/v1/oauth/clients/oc-nobody", headers=admin),
        404,
        "oauth_client_not_found",
    )


async def test_secret_shown_once_stored_hashed_and_audited(
    client: Client, admin: dict[str, str]
) -> None:
    created = await client.post("/api/v1/oauth/clients", json=BODY, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    secret = body["client_secret"]
    assert secret.startswith("ocs_")
    assert len(secret) > 40
    assert body["scopes"] == ["openid", "profile", "email"]
    assert body["first_party"] is False
    listed = (await client.get("/api/v1/oauth/clients", headers=admin)).json()
    assert [c["client_id"] for c in listed["items"]] == [body["client_id"]]
    assert "client_secret" not in listed["items"][0]
    async with direct_db(client) as db:
        row = await db.get(OAuthClient, body["client_id"])
        events = (await db.exec(select(AuditEvent))).all()
    assert row is not None
    assert row.secret_hash
    assert secret not in row.secret_hash
    assert "oauth_client.create" in [e.action for e in events]
    dumped = json.dumps([e.detail for e in events])
    assert secret not in dumped
    assert row.secret_hash not in dumped


async def test_bad_registrations_are_refused_and_change_nothing(
    client: Client, admin: dict[str, str]
) -> None:
    cases = {
        "invalid_redirect_uri": [
            {**BODY, "redirect_uris": ["http://wiki.example/callback"]},  # http off loopback
            {**BODY, "redirect_uris": ["https://wiki.example/cb#frag"]},
            {**BODY, "redirect_uris": ["/relative"]},
            {**BODY, "redirect_uris": ["javascript:alert(1)"]},
        ],
        "invalid_scope": [{**BODY, "scopes": ["openid", "org:owner"]}],
        None: [
            {**BODY, "type": "implicit"},
            {**BODY, "redirect_uris": []},
            {**BODY, "surprise": True},
            {"name": "Wiki"},
        ],
    }
    for code, bodies in cases.items():
        for body in bodies:
            answer = await client.post("/api/v1/oauth/clients", json=body, headers=admin)
            assert_problem(answer, 400, code)
    assert (await client.get("/api/v1/oauth/clients", headers=admin)).json()["items"] == []


async def test_deleting_a_client_ends_its_codes_and_tokens(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    url = (
        f"/oauth/authorize?client_id={created['client_id']}&redirect_uri={REDIRECT_URI}"
        f"&response_type=code&scope=openid&code_challenge={pkce[1]}&code_challenge_method=S256"
    )
    code = callback_params(await follow_to_client(client, url))["code"]
    token = await client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce[0],
        },
        auth=(created["client_id"], created["client_secret"]),
    )
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert (await client.get("/oauth/userinfo", headers=bearer)).status_code == 200
    unused = callback_params(await follow_to_client(client, url))["code"]
    answer = await client.delete(f"/api/v1/oauth/clients/{created['client_id']}", headers=admin)
    assert answer.status_code == 204, answer.text
    assert (await client.get("/oauth/userinfo", headers=bearer)).status_code == 401
    async with direct_db(client) as db:
        left = (
            await db.exec(
                select(AuthorizationCode).where(
                    col(AuthorizationCode.client_id) == created["client_id"]
                )
            )
        ).all()
    assert left == []
    assert unused


async def test_id_token_key_comes_with_the_first_client_and_rotates(
    client: Client, admin: dict[str, str]
) -> None:
    def algs(jwks: dict[str, Any]) -> list[str]:
        return sorted(k["alg"] for k in jwks["keys"])

    assert algs((await client.get("/.well-known/jwks.json")).json()) == ["ES256"]
    await register_client(client, admin)
    await register_client(client, admin)  # one ID-token key, however many clients
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert algs(jwks) == ["ES256", "RS256"]
    rsa = next(k for k in jwks["keys"] if k["alg"] == "RS256")
    assert set(rsa) == {"kty", "n", "e", "kid", "alg", "use"}  # public members only
    rotated = await client.post("/api/v1/keys/rotate", headers=admin)
    assert rotated.status_code == 201, rotated.text
    runtime_of(client).keyring.invalidate()
    keys = (await client.get("/api/v1/keys", headers=admin)).json()
    states = sorted((k["alg"], k["state"]) for k in keys)
    assert states == [
        ("ES256", "pending"),
        ("ES256", "retiring"),
        ("RS256", "pending"),
        ("RS256", "retiring"),
    ]
    # An emergency retirement of the ID-token key replaces it with an ID-token key.
    retiring = next(k for k in keys if k["alg"] == "RS256" and k["state"] == "retiring")
    answer = await client.post(f"/api/v1/keys/{retiring['kid']}/retire", headers=admin)
    assert answer.status_code == 200, answer.text
    async with direct_db(client) as db:
        ring = runtime_of(client).keyring
        ring.invalidate()
        signing = await ring.signing_key(db, alg="RS256", now=utcnow())
        platform = await ring.signing_key(db, now=utcnow())
    assert signing.alg == "RS256"
    assert platform.alg == "ES256"
