"""Logout and a password change end control-plane access tokens at once, not at their expiry:
on the API, as the subject of a token exchange, and through the UI's session cookie."""

from __future__ import annotations

import time
from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import PASSWORD, add_user, assert_problem
from tests.support.tokens import exchange, login_body, make_org
from tests.ui.forms import submit, ui_login


def _bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_logout_ends_the_access_token_it_was_sent_with(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: after logout the access token still read /api/v1/me (200) and
    still exchanged into an org (200) for the rest of its 15 minutes."""
    user = await add_user(client, "alice@example.com")
    await make_org(client, "acme", members={user: "member"})
    first = await login_body(client, "alice@example.com")
    other = await login_body(client, "alice@example.com")  # another device
    out = await client.post(
        "/api/v1/auth/logout",
        headers=_bearer(first),
        json={"refresh_token": first["refresh_token"]},
    )
    assert out.status_code == 200, out.text
    assert_problem(await client.get("/api/v1/me", headers=_bearer(first)), 401, "invalid_token")
    refused = await exchange(client, first["access_token"], audience="org:acme")
    assert refused.json()["error"] == "invalid_request"
    # Only that session ends.
    assert (await client.get("/api/v1/me", headers=_bearer(other))).status_code == 200
    assert (await exchange(client, other["access_token"], audience="org:acme")).status_code == 200


async def test_a_password_change_ends_every_access_token_of_the_user(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: both sessions' access tokens kept working after the change
    (only refresh tokens were revoked)."""
    user = await add_user(client, "bob@example.com")
    await make_org(client, "acme", members={user: "member"})
    laptop = await login_body(client, "bob@example.com")
    phone = await login_body(client, "bob@example.com")
    changed = await client.post(
        "/api/v1/me/password",
        headers=_bearer(laptop),
        json={"current_password": PASSWORD, "new_password": "a much better one"},
    )
    assert changed.status_code == 200, changed.text
    for body in (laptop, phone):
        assert_problem(await client.get("/api/v1/me", headers=_bearer(body)), 401, "invalid_token")
        answer = await exchange(client, body["access_token"], audience="org:acme")
        assert answer.json()["error"] == "invalid_request"
    fresh = await login_body(client, "bob@example.com", "a much better one")
    assert (await client.get("/api/v1/me", headers=_bearer(fresh))).status_code == 200


async def test_ui_logout_ends_the_cookies_access_token(client: AsyncTestClient[Any]) -> None:
    """Failed on the old code: the session cookie's access token, replayed after logout,
    still opened the UI and the API (200)."""
    await add_user(client, "carol@example.com")
    await ui_login(client, "carol@example.com")
    token = client.cookies.get("orgplane_session")
    assert token
    out = await submit(client, "/ui/orgs", "/ui/logout")
    assert out.status_code == 303
    replay = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(replay, 401, "invalid_token")


async def test_a_redis_outage_does_not_lock_everyone_out() -> None:
    """Checking a token against the revocation store fails open: while Redis is unreachable
    every request would otherwise answer 503 (tests/proof/test_store_outages.py runs the real
    outage; this injects the store's failure)."""
    from litestar.stores.memory import MemoryStore
    from redis.exceptions import ConnectionError as RedisConnectionError

    from control_plane.signing.revocation import deny_access_token, token_denied

    class Unreachable(MemoryStore):
        async def exists(self, key: str) -> bool:
            raise RedisConnectionError("connection refused")

    claims = {"jti": "j1", "exp": int(time.time()) + 60}
    assert await token_denied(Unreachable(), claims) is False
    store = MemoryStore()
    await deny_access_token(store, claims)
    assert await token_denied(store, claims) is True
