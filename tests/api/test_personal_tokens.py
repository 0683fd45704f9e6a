"""Personal access tokens: made, shown once, stored hashed, listed, revoked, and ended with the
user's sessions; bad input is a problem and changes nothing."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select
from structlog.testing import capture_logs

from control_plane.db.models import AuditEvent, PersonalToken, User
from control_plane.identity.email_links import issue_link
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.tokens import make_org
from tests.support.tokens_personal import TOKENS, exchange_personal, new_token


async def test_the_secret_is_shown_once_and_only_its_hash_is_stored(
    client: AsyncTestClient[Any],
) -> None:
    user_id = await add_user(client, "alice@example.com")
    org_id = await make_org(client, "acme", members={user_id: "owner"}, plan="team")
    headers = await login(client, "alice@example.com")
    with capture_logs() as logs:
        made = await new_token(client, headers, orgs=[org_id], scopes=["org:read"], name="CI")
        secret = made["token"]
        entered = await exchange_personal(client, secret, audience="org:acme")
        listed = await client.get(TOKENS, headers=headers)
    assert made["orgs"] == [org_id]
    assert made["scopes"] == ["org:read"]
    assert made["name"] == "CI"
    assert secret.startswith("opat_")
    assert len(secret) >= 45
    assert entered.status_code == 200, entered.text
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [made["id"]]
    assert items[0]["last_used_at"] is not None
    assert items[0]["expired"] is False
    assert "token" not in items[0]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in listed.text
    assert digest not in listed.text
    assert secret not in repr(logs)
    async with direct_db(client) as db:
        row = (await db.exec(select(PersonalToken))).one()
        events = (await db.exec(select(AuditEvent))).all()
    assert row.token_hash == digest
    assert secret not in repr(row.model_dump())
    created = [e for e in events if e.action == "personal_token.create"]
    assert [e.target_id for e in created] == [made["id"]]
    assert created[0].detail["scopes"] == ["org:read"]
    assert created[0].actor_id == user_id
    assert all(secret not in repr(e.detail) for e in events)


async def test_revoked_and_expired_tokens_are_refused(client: AsyncTestClient[Any]) -> None:
    user_id = await add_user(client, "bob@example.com")
    await make_org(client, "acme", members={user_id: "member"}, plan="team")
    headers = await login(client, "bob@example.com")
    kept = await new_token(client, headers, name="kept")
    revoked = await new_token(client, headers, name="revoked")
    expired = await new_token(client, headers, name="expired")
    async with direct_db(client) as db:
        row = await db.get(PersonalToken, expired["id"])
        assert row is not None
        row.expires_at = row.created_at.replace(year=row.created_at.year - 1)
        db.add(row)
        await db.commit()
    gone = await client.delete(f"{TOKENS}/{revoked['id']}", headers=headers)
    assert gone.status_code == 204, gone.text
    for made in (revoked, expired):
        answer = await exchange_personal(client, made["token"], audience="org:acme")
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_request"
        assert answer.json()["orgplane_code"] == "personal_token_invalid"
    assert (await exchange_personal(client, kept["token"], audience="org:acme")).status_code == 200
    listed = (await client.get(TOKENS, headers=headers)).json()["items"]
    assert {i["name"]: i["expired"] for i in listed} == {"kept": False, "expired": True}
    again = await client.delete(f"{TOKENS}/{revoked['id']}", headers=headers)
    assert_problem(again, 404, "personal_token_not_found")
    async with direct_db(client) as db:
        query = select(AuditEvent).where(col(AuditEvent.action) == "personal_token.revoke")
        events = (await db.exec(query)).all()
    assert [(e.target_id, e.actor_id) for e in events] == [(revoked["id"], user_id)]


async def test_another_users_token_is_not_found(client: AsyncTestClient[Any]) -> None:
    alice = await add_user(client, "alice@example.com")
    await add_user(client, "mallory@example.com")
    await make_org(client, "acme", members={alice: "member"}, plan="team")
    alice_headers = await login(client, "alice@example.com")
    mallory = await login(client, "mallory@example.com")
    made = await new_token(client, alice_headers)
    for token_id in (made["id"], "0" * 32, "x" * 500):
        answer = await client.delete(f"{TOKENS}/{token_id}", headers=mallory)
        assert_problem(answer, 404, "personal_token_not_found")
    assert (await client.get(TOKENS, headers=mallory)).json()["items"] == []
    assert (await exchange_personal(client, made["token"], audience="org:acme")).status_code == 200


async def test_a_personal_token_is_not_a_bearer_token_of_the_api(
    client: AsyncTestClient[Any],
) -> None:
    user_id = await add_user(client, "carol@example.com")
    await make_org(client, "acme", members={user_id: "owner"}, plan="team")
    made = await new_token(client, await login(client, "carol@example.com"))
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert_problem(await client.get("/api/v1/me", headers=bearer), 401, "invalid_token")
    assert_problem(await client.get(TOKENS, headers=bearer), 401, "invalid_token")


@pytest.mark.parametrize("ending", ["password_change", "password_reset", "admin_disable"])
async def test_ending_every_session_revokes_personal_tokens(
    client: AsyncTestClient[Any], admin: dict[str, str], ending: str
) -> None:
    """A password change or reset and an admin disabling the account end personal access
    tokens too (docs/identity.md); re-enabling the account does not bring them back."""
    user_id = await add_user(client, "dave@example.com")
    await make_org(client, "acme", members={user_id: "member"}, plan="team")
    headers = await login(client, "dave@example.com")
    made = await new_token(client, headers)
    if ending == "password_change":
        body = {"current_password": PASSWORD, "new_password": "another long password"}
        changed = await client.post("/api/v1/me/password", headers=headers, json=body)
        assert changed.status_code == 200, changed.text
    elif ending == "password_reset":
        await _reset_password(client, user_id)
    else:
        for disabled in (True, False):
            answer = await client.patch(
                f"/api/v1/users/{user_id}", headers=admin, json={"disabled": disabled}
            )
            assert answer.status_code == 200, answer.text
    refused = await exchange_personal(client, made["token"], audience="org:acme")
    assert refused.json().get("orgplane_code") == "personal_token_invalid", refused.text
    async with direct_db(client) as db:
        row = await db.get(PersonalToken, made["id"])
    assert row is not None
    assert row.revoked_at is not None


async def _reset_password(client: AsyncTestClient[Any], user_id: str) -> None:
    """A password reset through a reset link made as the mailed one is (the mail itself is
    tests/api/test_password_reset.py's subject)."""
    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        assert user is not None
        link = issue_link(db, user=user, purpose="reset", email=user.email, ttl=600)
        await db.commit()
    answer = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": link, "new_password": "a new long password"},
    )
    assert answer.status_code == 200, answer.text


async def test_whoever_holds_a_token_revokes_it_at_the_revocation_endpoint(
    client: AsyncTestClient[Any],
) -> None:
    """RFC 7009: a leaked token is ended by presenting it, without its owner's login."""
    user_id = await add_user(client, "lea@example.com")
    await make_org(client, "acme", members={user_id: "member"}, plan="team")
    made = await new_token(client, await login(client, "lea@example.com"))
    for _ in range(2):  # the second time it is unknown: the same empty answer
        answer = await client.post("/oauth/revoke", data={"token": made["token"]})
        assert (answer.status_code, answer.json()) == (200, {})
    refused = await exchange_personal(client, made["token"], audience="org:acme")
    assert refused.json()["orgplane_code"] == "personal_token_invalid"
    async with direct_db(client) as db:
        events = (
            await db.exec(select(AuditEvent).where(col(AuditEvent.actor_id) == user_id))
        ).all()
    revoked = [e for e in events if e.action == "personal_token.revoke"]
    assert [(e.target_id, e.detail["via"]) for e in revoked] == [(made["id"], "oauth_revoke")]


async def test_the_longest_lifetime_is_the_setting(make_settings: Any) -> None:
    """ORGPLANE_PERSONAL_TOKEN_MAX_DAYS bounds ``expires_in_days``: over it is 400
    ``expiry_too_long`` and nothing is made; at it, the token is made."""
    from control_plane.app import create_app

    settings = make_settings(ORGPLANE_PERSONAL_TOKEN_MAX_DAYS="7")
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        await add_user(client, "pat-days@example.com")
        headers = await login(client, "pat-days@example.com")
        body = {"name": "ci", "orgs": "all", "scopes": ["org:read"], "expires_in_days": 8}
        too_long = await client.post("/api/v1/me/tokens", headers=headers, json=body)
        assert_problem(too_long, 400, "expiry_too_long")
        assert (await client.get("/api/v1/me/tokens", headers=headers)).json()["items"] == []
        made = await new_token(client, headers, days=7)
        assert made["token"].startswith("opat_")
