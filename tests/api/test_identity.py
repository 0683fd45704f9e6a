"""Identity: login, rate limits, me, password change, user administration."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import PASSWORD, add_user, assert_problem, login


async def test_login_returns_tokens_and_me_answers(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "Alice@Example.COM")
    answer = await client.post(
        "/api/v1/auth/login", json={"email": "  alice@example.com ", "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"].startswith("opr_")
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "alice@example.com"
    assert "password_hash" not in me.text


async def test_unknown_email_and_wrong_password_answer_the_same(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "bob@example.com")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "bob@example.com", "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    a, b = assert_problem(wrong, 401, "invalid_credentials"), assert_problem(unknown, 401)
    assert a["detail"] == b["detail"]
    assert a["code"] == b["code"]


async def test_login_is_rate_limited_per_email(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "carol@example.com")
    for _ in range(10):
        r = await client.post(
            "/api/v1/auth/login", json={"email": "carol@example.com", "password": "nope nope nope"}
        )
        assert r.status_code == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"email": "carol@example.com", "password": PASSWORD}
    )
    assert_problem(blocked, 429, "rate_limited")
    assert int(blocked.headers["retry-after"]) > 0


async def test_failed_and_successful_logins_are_audited(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await add_user(client, "dave@example.com")
    await client.post(
        "/api/v1/auth/login", json={"email": "dave@example.com", "password": "x" * 12}
    )
    await login(client, "dave@example.com")
    from sqlmodel import select

    from control_plane.db.models import AuditEvent
    from tests.support.api import direct_db

    async with direct_db(client) as db:
        rows = (await db.exec(select(AuditEvent).where(AuditEvent.action == "auth.login"))).all()
    outcomes = sorted(r.outcome for r in rows if r.actor_email == "dave@example.com")
    assert outcomes == ["failure", "success"]
    assert all("x" * 12 not in str(r.detail) for r in rows)


async def test_change_password_revokes_refresh_tokens(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "erin@example.com")
    first = (
        await client.post(
            "/api/v1/auth/login", json={"email": "erin@example.com", "password": PASSWORD}
        )
    ).json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    weak = await client.post(
        "/api/v1/me/password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert_problem(weak, 400, "weak_password")
    ok = await client.post(
        "/api/v1/me/password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": "a much better one"},
    )
    assert ok.status_code == 200, ok.text
    assert (
        await client.post(
            "/api/v1/auth/login", json={"email": "erin@example.com", "password": PASSWORD}
        )
    ).status_code == 401
    await login(client, "erin@example.com", "a much better one")


async def test_admin_creates_and_disables_users(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/users",
        headers=admin,
        json={"email": "frank@example.com", "password": PASSWORD, "name": "<b>Frank</b>"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "<b>Frank</b>"
    dup = await client.post(
        "/api/v1/users", headers=admin, json={"email": "FRANK@example.com", "password": PASSWORD}
    )
    assert_problem(dup, 409, "email_taken")
    frank = await login(client, "frank@example.com")
    assert_problem(await client.get("/api/v1/users", headers=frank), 403)
    user_id = created.json()["id"]
    off = await client.patch(f"/api/v1/users/{user_id}", headers=admin, json={"disabled": True})
    assert off.status_code == 200
    assert off.json()["disabled"] is True
    assert_problem(await client.get("/api/v1/me", headers=frank), 401, "invalid_token")


async def test_bad_bodies_are_problems_and_change_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    malformed = await client.post(
        "/api/v1/users", headers={**admin, "content-type": "application/json"}, content=b"{not json"
    )
    assert_problem(malformed, 400)
    unknown = await client.post(
        "/api/v1/users",
        headers=admin,
        json={"email": "g@example.com", "password": PASSWORD, "role": "god"},
    )
    assert_problem(unknown, 400, "validation_error")
    wrong_type = await client.post(
        "/api/v1/users", headers=admin, json={"email": 5, "password": PASSWORD}
    )
    body = assert_problem(wrong_type, 400, "validation_error")
    assert "email" in body["detail"]
    huge = await client.post(
        "/api/v1/users",
        headers=admin,
        json={"email": "h@example.com", "password": PASSWORD, "name": "x" * 2_000_000},
    )
    assert_problem(huge, 413, "body_too_large")
    listing = (await client.get("/api/v1/users", headers=admin)).json()
    assert [u["email"] for u in listing["items"]] == ["root@example.com"]


async def test_session_cookie_reads_but_never_writes_the_api(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "cookie@example.com", admin=True)
    token = (
        await client.post(
            "/api/v1/auth/login", json={"email": "cookie@example.com", "password": PASSWORD}
        )
    ).json()["access_token"]
    client.cookies.set("orgplane_session", token)
    try:
        assert (await client.get("/api/v1/me")).status_code == 200
        write = await client.post(
            "/api/v1/users", json={"email": "forged@example.com", "password": PASSWORD}
        )
        assert_problem(write, 401, "unauthenticated")
    finally:
        client.cookies.clear()
    headers = {"Authorization": f"Bearer {token}"}
    listing = (await client.get("/api/v1/users", headers=headers)).json()
    assert "forged@example.com" not in [u["email"] for u in listing["items"]]
