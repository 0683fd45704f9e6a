"""Regenerating one's recovery codes, and a platform admin's reset of someone else's MFA
(SQLite and PostgreSQL through the ``client`` fixture; the mail test through a real SMTP
server in the test process)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import col, select
from structlog.testing import capture_logs

from control_plane.app import create_app
from control_plane.db.models import AuditEvent, OutboxMail, RecoveryCode, User
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.mfa import code, enable_mfa, login_answer, steady_step
from tests.support.smtp import Mailbox, delivered, smtp_env, text_of
from tests.support.tokens import TOKEN_URL, login_body

CODES = "/api/v1/me/mfa/recovery-codes"


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def _events(client: AsyncTestClient[Any], action: str) -> list[AuditEvent]:
    async with direct_db(client) as db:
        query = select(AuditEvent).where(col(AuditEvent.action) == action)
        return list((await db.exec(query)).all())


async def test_regenerating_recovery_codes_replaces_every_old_one(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "ro@example.com")
    headers = await login(client, "ro@example.com")
    enrolled = await enable_mfa(client, headers)
    old = enrolled.recovery_codes
    # A wrong password or code is refused, and changes nothing.
    wrong = await client.post(CODES, headers=headers, json={"password": "nope", "code": old[0]})
    assert_problem(wrong, 401, "invalid_credentials")
    bad = await client.post(CODES, headers=headers, json={"password": PASSWORD, "code": "000000"})
    assert_problem(bad, 401, "invalid_otp")
    with capture_logs() as logs:
        fresh = await client.post(
            CODES, headers=headers, json={"password": PASSWORD, "code": old[1]}
        )
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["cache-control"] == "no-store"
    new = fresh.json()["recovery_codes"]
    assert len(new) == len(set(new)) == 10
    assert not set(new) & set(old)
    # The old codes (used or not) no longer sign in; a new one does, once.
    for spent in (old[0], old[2]):
        assert_problem(await login_answer(client, "ro@example.com", spent), 401, "invalid_otp")
    assert (await login_answer(client, "ro@example.com", new[0])).status_code == 200
    assert_problem(await login_answer(client, "ro@example.com", new[0]), 401, "invalid_otp")
    # A current TOTP works as the factor too.
    steady_step()
    again = await client.post(
        CODES, headers=headers, json={"password": PASSWORD, "code": code(enrolled.secret)}
    )
    assert again.status_code == 200, again.text
    async with direct_db(client) as db:
        stored = (await db.exec(select(RecoveryCode))).all()
    assert len(stored) == 10
    assert all(r.used_at is None for r in stored)
    events = await _events(client, "mfa.recovery_codes_regenerated")
    assert len(events) == 2
    newest = again.json()["recovery_codes"]
    for text in (repr(logs), repr([e.detail for e in events])):
        assert not any(c in text for c in [*old, *new, *newest])


async def test_two_regenerations_at_once_leave_one_set_of_codes(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "rr@example.com")
    headers = await login(client, "rr@example.com")
    enrolled = await enable_mfa(client, headers)
    bodies = [{"password": PASSWORD, "code": c} for c in enrolled.recovery_codes[:4]]
    answers = await asyncio.gather(
        *(client.post(CODES, headers=headers, json=body) for body in bodies)
    )
    # One at a time: a regeneration that runs after another finds its code deleted.
    statuses = [a.status_code for a in answers]
    assert 200 in statuses
    assert set(statuses) <= {200, 401}, [a.text for a in answers]
    async with direct_db(client) as db:
        stored = (await db.exec(select(RecoveryCode))).all()
    # Only one set of 10 codes is left, all unused: the last one answered.
    assert len(stored) == 10
    assert all(r.used_at is None for r in stored)


async def test_regenerating_needs_mfa_and_a_well_formed_body(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "rp@example.com")
    headers = await login(client, "rp@example.com")
    body = {"password": PASSWORD, "code": "123456"}
    assert_problem(await client.post(CODES, headers=headers, json=body), 409, "mfa_not_enabled")
    for bad in ({}, {"password": PASSWORD}, {**body, "extra": 1}, {**body, "code": "1" * 65}):
        assert_problem(await client.post(CODES, headers=headers, json=bad), 400)
    assert_problem(await client.post(CODES, json=body), 401)
    async with direct_db(client) as db:
        assert not (await db.exec(select(RecoveryCode))).all()


async def test_regenerating_counts_against_the_login_limit(
    make_settings: Any, db_backend: str
) -> None:
    app = create_app(make_settings(ORGPLANE_LOGIN_RATE_LIMIT="3"))
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as client:
        await add_user(client, "rq@example.com")
        headers = await login(client, "rq@example.com")
        enrolled = await enable_mfa(client, headers)
        for _ in range(3):
            wrong = {"password": PASSWORD, "code": "999999"}
            assert_problem(await client.post(CODES, headers=headers, json=wrong), 401)
        right = {"password": PASSWORD, "code": enrolled.recovery_codes[0]}
        blocked = await client.post(CODES, headers=headers, json=right)
        assert_problem(blocked, 429)
        assert blocked.headers["retry-after"]


async def test_an_admin_resets_someone_elses_mfa_and_ends_their_sessions(
    client: AsyncTestClient[Any],
) -> None:
    user_id = await add_user(client, "lost@example.com")
    admin_id = await add_user(client, "root@example.com", admin=True)
    enrolled = await enable_mfa(client, await login(client, "lost@example.com"))
    steady_step()
    answer = await login_answer(client, "lost@example.com", code(enrolled.secret))
    assert answer.status_code == 200, answer.text
    session = answer.json()
    admin = await login(client, "root@example.com")
    url = f"/api/v1/users/{user_id}/mfa"
    reason = {"reason": "ticket 42: identity checked by phone"}
    # Not for anyone but platform admins, and not for oneself.
    other = await add_user(client, "peer@example.com")
    peer = await login(client, "peer@example.com")
    assert other
    assert_problem(await client.request("DELETE", url, headers=peer, json=reason), 403)
    mine = f"/api/v1/users/{admin_id}/mfa"
    self_reset = await client.request("DELETE", mine, headers=admin, json=reason)
    assert_problem(self_reset, 409, "self_mfa_reset")
    for bad in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}):
        assert_problem(await client.request("DELETE", url, headers=admin, json=bad), 400)
    nobody = await client.request("DELETE", "/api/v1/users/nope/mfa", headers=admin, json=reason)
    assert_problem(nobody, 404, "user_not_found")
    assert (await client.get("/api/v1/me", headers=bearer(session))).status_code == 200

    done = await client.request("DELETE", url, headers=admin, json=reason)
    assert done.status_code == 204, done.text
    # Every session of the user ends; the password alone signs in again.
    assert_problem(await client.get("/api/v1/me", headers=bearer(session)), 401)
    refreshed = await client.post(
        TOKEN_URL,
        data={"grant_type": "refresh_token", "refresh_token": session["refresh_token"]},
    )
    assert refreshed.status_code == 400
    fresh = await login_body(client, "lost@example.com")
    me = await client.get("/api/v1/me", headers=bearer(fresh))
    assert me.json()["mfa_enabled"] is False
    again = await client.request("DELETE", url, headers=admin, json=reason)
    assert_problem(again, 409, "mfa_not_enabled")
    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        assert user is not None
        assert (user.totp_secret_enc, user.totp_enabled_at) == ("", None)
        assert not (await db.exec(select(RecoveryCode))).all()
        # No mail is configured here: nothing is queued, and the reset still happened.
        assert not (await db.exec(select(OutboxMail))).all()
    [event] = await _events(client, "mfa.admin_reset")
    assert (event.actor_id, event.target_id) == (admin_id, user_id)
    assert event.detail["reason"] == reason["reason"]


async def test_a_reset_is_mailed_to_the_user_when_mail_is_configured(
    make_settings: Any, smtp: tuple[int, Mailbox]
) -> None:
    app = create_app(make_settings(**smtp_env(smtp[0])))
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as client:
        user_id = await add_user(client, "mailed@example.com")
        await add_user(client, "boss@example.com", admin=True)
        await enable_mfa(client, await login(client, "mailed@example.com"))
        admin = await login(client, "boss@example.com")
        done = await client.request(
            "DELETE", f"/api/v1/users/{user_id}/mfa", headers=admin, json={"reason": "lost phone"}
        )
        assert done.status_code == 204, done.text
        [message] = await delivered(smtp[1], "mailed@example.com", "Two-factor")
    body = text_of(message)
    assert "turned off two-factor authentication" in body
    assert "mailed@example.com" in body
    assert "lost phone" not in body
