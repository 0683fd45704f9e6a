"""RFC 7009 revocation and RFC 7662 introspection at the control plane."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import add_user
from tests.support.tokens import exchange, login_body, make_org


def _bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def _introspect(
    client: AsyncTestClient[Any], caller: dict[str, Any], token: str
) -> dict[str, Any]:
    answer = await client.post("/oauth/introspect", headers=_bearer(caller), data={"token": token})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    return body


async def test_introspection_says_what_is_active_and_to_whom(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: there was no introspection endpoint (404)."""
    alice = await add_user(client, "alice@example.com")
    await add_user(client, "bob@example.com")
    await add_user(client, "root@example.com", admin=True)
    await make_org(client, "acme", members={alice: "admin"})
    a = await login_body(client, "alice@example.com")
    b = await login_body(client, "bob@example.com")
    root = await login_body(client, "root@example.com")
    org_token = (await exchange(client, a["access_token"], audience="org:acme")).json()

    mine = await _introspect(client, a, a["access_token"])
    assert mine["active"] is True
    assert (mine["sub"], mine["token_use"], mine["client_id"]) == (alice, "access", "orgplane")
    org = await _introspect(client, a, org_token["access_token"])
    assert (org["active"], org["org_role"], org["scope"]) == (
        True,
        "admin",
        "org:read org:write org:admin",
    )
    refresh = await _introspect(client, a, a["refresh_token"])
    assert (refresh["active"], refresh["token_type"], refresh["sub"]) == (
        True,
        "refresh_token",
        alice,
    )
    # Another user's token is not bob's to know about; staff may look.
    assert await _introspect(client, b, a["access_token"]) == {"active": False}
    assert (await _introspect(client, root, a["access_token"]))["active"] is True
    for junk in ("x", "opr_nothing", "a.b.c", "e" * 9000, org_token["access_token"] + "x"):
        assert await _introspect(client, root, junk) == {"active": False}

    nobody = await client.post("/oauth/introspect", data={"token": a["access_token"]})
    assert nobody.status_code == 401
    assert nobody.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in nobody.headers["www-authenticate"]
    missing = await client.post("/oauth/introspect", headers=_bearer(a), data={})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


async def test_revocation_ends_each_kind_of_token(client: AsyncTestClient[Any]) -> None:
    """Failed on the old code: there was no revocation endpoint (404)."""
    alice = await add_user(client, "alice@example.com")
    await add_user(client, "root@example.com", admin=True)
    await make_org(client, "acme", members={alice: "member"})
    root = await login_body(client, "root@example.com")
    first = await login_body(client, "alice@example.com")
    org_token = (await exchange(client, first["access_token"], audience="org:acme")).json()

    for token in (org_token["access_token"], first["access_token"], first["refresh_token"]):
        done = await client.post("/oauth/revoke", data={"token": token, "client_id": "orgplane"})
        assert (done.status_code, done.json()) == (200, {})
        assert await _introspect(client, root, token) == {"active": False}
    assert (await client.get("/api/v1/me", headers=_bearer(first))).status_code == 401
    spent = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert spent.json()["error"] == "invalid_grant"

    # Unknown or garbage tokens answer the same 200 (RFC 7009 §2.2); bad requests do not.
    for junk in ("opr_unknown", "not-a-token", "x" * 10_000):
        same = await client.post("/oauth/revoke", data={"token": junk})
        assert (same.status_code, same.json()) == (200, {})
    assert (await client.post("/oauth/revoke", data={})).json()["error"] == "invalid_request"
    wrong = await client.post("/oauth/revoke", data={"token": "x", "client_id": "evil"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    as_json = await client.post("/oauth/revoke", json={"token": "x"})
    assert as_json.json()["error"] == "invalid_request"


async def test_discovery_names_both_endpoints(client: AsyncTestClient[Any]) -> None:
    """Failed on the old code: the metadata had neither endpoint."""
    meta = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["revocation_endpoint"].endswith("/oauth/revoke")
    assert meta["introspection_endpoint"].endswith("/oauth/introspect")
