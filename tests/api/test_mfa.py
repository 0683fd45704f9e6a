"""TOTP two-factor authentication: enrolment, sign-in with a code or a recovery code, replay
refused, the answers that do not leak whether an account has MFA, and turning it off. Codes are
made by ``pyotp`` from the secret the API answered, as an authenticator app would."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import col, select
from structlog.testing import capture_logs

from control_plane.app import create_app
from control_plane.db.models import AuditEvent, RecoveryCode, User
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.mfa import TOTP, code, enable_mfa, login_answer, steady_step


def _amr(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    return list(claims["amr"])


async def test_enrolment_shows_the_secret_once_and_a_code_turns_mfa_on(
    client: AsyncTestClient[Any],
) -> None:
    user_id = await add_user(client, "ann@example.com")
    headers = await login(client, "ann@example.com")
    wrong = await client.post(TOTP, headers=headers, json={"password": "not it"})
    assert_problem(wrong, 401, "invalid_credentials")
    with capture_logs() as logs:
        started = await client.post(
            TOTP, headers=headers, json={"password": "correct horse battery"}
        )
        assert started.status_code == 201, started.text
        secret = started.json()["secret"]
        uri = urlsplit(started.json()["otpauth_uri"])
        assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
        assert parse_qs(uri.query)["secret"] == [secret]
        # Not a factor before it is confirmed: the password alone still signs in.
        assert _amr(await login_answer(client, "ann@example.com")) == ["pwd"]
        me = await client.get("/api/v1/me", headers=headers)
        assert me.json()["mfa_enabled"] is False
        steady_step()
        bad = await client.post(f"{TOTP}/confirm", headers=headers, json={"code": "000000"})
        assert_problem(bad, 400, "invalid_otp")
        confirmed = await client.post(
            f"{TOTP}/confirm", headers=headers, json={"code": code(secret, -1)}
        )
        assert confirmed.status_code == 200, confirmed.text
        codes = confirmed.json()["recovery_codes"]
        again = await client.post(TOTP, headers=headers, json={"password": "correct horse battery"})
        assert_problem(again, 409, "mfa_already_enabled")
    assert len(codes) == len(set(codes)) == 10
    assert (await client.get("/api/v1/me", headers=headers)).json()["mfa_enabled"] is True
    # Stored encrypted (the secret) and hashed (the codes); never logged or audited.
    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        stored = (await db.exec(select(RecoveryCode))).all()
        events = (await db.exec(select(AuditEvent))).all()
    assert user is not None
    assert user.totp_secret_enc
    assert secret not in user.totp_secret_enc
    assert len(stored) == 10
    hashes = " ".join(r.code_hash for r in stored)
    assert not any(c.replace("-", "") in hashes or c in hashes for c in codes)
    actions = [e.action for e in events]
    assert "mfa.totp_started" in actions
    assert "mfa.totp_enabled" in actions
    for text in (repr(logs), repr([(e.detail, e.action) for e in events])):
        assert secret not in text
        assert not any(c in text for c in codes)


async def test_login_needs_the_code_and_a_code_is_usable_once(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "bo@example.com")
    enrolled = await enable_mfa(client, await login(client, "bo@example.com"))
    steady_step()
    needed = await login_answer(client, "bo@example.com")
    assert_problem(needed, 401, "mfa_required")
    assert "refresh_token" not in needed.text
    now = code(enrolled.secret)
    assert _amr(await login_answer(client, "bo@example.com", now)) == ["pwd", "otp"]
    assert_problem(await login_answer(client, "bo@example.com", now), 401, "invalid_otp")
    # The step before the last used one is refused too (steps only move forward).
    earlier = code(enrolled.secret, -1)
    assert_problem(await login_answer(client, "bo@example.com", earlier), 401, "invalid_otp")
    assert_problem(await login_answer(client, "bo@example.com", "12345"), 401, "invalid_otp")
    later = code(enrolled.secret, 1)
    assert _amr(await login_answer(client, "bo@example.com", later)) == ["pwd", "otp"]


async def test_one_code_sent_twice_at_once_signs_in_once(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "cy@example.com")
    enrolled = await enable_mfa(client, await login(client, "cy@example.com"))
    steady_step()
    now = code(enrolled.secret)
    answers = await asyncio.gather(*(login_answer(client, "cy@example.com", now) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]


async def test_a_recovery_code_works_once(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "di@example.com")
    enrolled = await enable_mfa(client, await login(client, "di@example.com"))
    spare = enrolled.recovery_codes[3]
    assert _amr(await login_answer(client, "di@example.com", spare.upper())) == ["pwd", "otp"]
    assert_problem(await login_answer(client, "di@example.com", spare), 401, "invalid_otp")
    other = enrolled.recovery_codes[4].replace("-", "")
    assert _amr(await login_answer(client, "di@example.com", other)) == ["pwd", "otp"]
    async with direct_db(client) as db:
        used = await db.exec(select(RecoveryCode).where(col(RecoveryCode.used_at).is_not(None)))
        assert len(used.all()) == 2


async def test_a_wrong_password_gets_the_same_answer_with_or_without_mfa(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "ed@example.com")
    await add_user(client, "fi@example.com")
    enrolled = await enable_mfa(client, await login(client, "ed@example.com"))
    steady_step()
    details = []
    for email, otp in (
        ("ed@example.com", None),
        ("ed@example.com", code(enrolled.secret)),
        ("fi@example.com", None),
        ("nobody@example.com", None),
    ):
        answer = await login_answer(client, email, otp, password="wrong password")
        details.append(assert_problem(answer, 401, "invalid_credentials")["detail"])
    assert len(set(details)) == 1
    # The code sent with the wrong password was not spent.
    assert _amr(await login_answer(client, "ed@example.com", code(enrolled.secret))) == [
        "pwd",
        "otp",
    ]


async def test_wrong_codes_count_against_the_login_limit(
    make_settings: Any, db_backend: str
) -> None:
    app = create_app(make_settings(ORGPLANE_LOGIN_RATE_LIMIT="3"))
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as client:
        await add_user(client, "gus@example.com")
        enrolled = await enable_mfa(client, await login(client, "gus@example.com"))
        steady_step()
        # Being asked for the code is not a failure: it does not use the allowance up.
        for _ in range(4):
            assert_problem(await login_answer(client, "gus@example.com"), 401, "mfa_required")
        for _ in range(3):
            wrong = await login_answer(client, "gus@example.com", "999999")
            assert_problem(wrong, 401, "invalid_otp")
        blocked = await login_answer(client, "gus@example.com", code(enrolled.secret))
        assert_problem(blocked, 429)
        assert blocked.headers["retry-after"]


async def test_turning_mfa_off_needs_the_password_and_a_code(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "hal@example.com")
    headers = await login(client, "hal@example.com")
    enrolled = await enable_mfa(client, headers)
    steady_step()
    body = {"password": "correct horse battery", "code": "000000"}
    assert_problem(
        await client.request("DELETE", TOTP, headers=headers, json=body), 401, "invalid_otp"
    )
    body = {"password": "nope", "code": code(enrolled.secret)}
    assert_problem(
        await client.request("DELETE", TOTP, headers=headers, json=body),
        401,
        "invalid_credentials",
    )
    body = {"password": "correct horse battery", "code": enrolled.recovery_codes[0]}
    off = await client.request("DELETE", TOTP, headers=headers, json=body)
    assert off.status_code == 204, off.text
    assert (await client.get("/api/v1/me", headers=headers)).json()["mfa_enabled"] is False
    assert _amr(await login_answer(client, "hal@example.com")) == ["pwd"]
    again = await client.request("DELETE", TOTP, headers=headers, json=body)
    assert_problem(again, 409, "mfa_not_enabled")
    async with direct_db(client) as db:
        assert not (await db.exec(select(RecoveryCode))).all()
        disabled = select(AuditEvent).where(col(AuditEvent.action) == "mfa.totp_disabled")
        assert len((await db.exec(disabled)).all()) == 1
        failed = select(AuditEvent).where(col(AuditEvent.action) == "auth.reauth")
        reasons = sorted(e.detail["reason"] for e in (await db.exec(failed)).all())
        assert reasons == ["invalid_credentials", "invalid_otp"]


async def test_bad_input_is_a_problem_and_changes_nothing(client: AsyncTestClient[Any]) -> None:
    user_id = await add_user(client, "ivy@example.com")
    headers = await login(client, "ivy@example.com")
    for body in ({}, {"password": 5}, {"password": "correct horse battery", "extra": 1}):
        assert_problem(await client.post(TOTP, headers=headers, json=body), 400)
    early = await client.post(f"{TOTP}/confirm", headers=headers, json={"code": "123456"})
    assert_problem(early, 409, "mfa_not_started")
    long = await client.post(f"{TOTP}/confirm", headers=headers, json={"code": "1" * 65})
    assert_problem(long, 400)
    assert_problem(await client.request("DELETE", TOTP, headers=headers), 400)
    off = {"password": "correct horse battery", "code": "123456"}
    not_on = await client.request("DELETE", TOTP, headers=headers, json=off)
    assert_problem(not_on, 409, "mfa_not_enabled")
    unknown = "/api/v1/orgs/nope/mfa-requirement"
    assert_problem(await client.put(unknown, headers=headers, json={"required": True}), 404)
    for otp in ("1" * 65, 123456, ""):
        body = {"email": "ivy@example.com", "password": "correct horse battery", "otp": otp}
        assert_problem(await client.post("/api/v1/auth/login", json=body), 400)
    assert_problem(await client.post(TOTP, json={"password": "x"}), 401)
    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        assert user is not None
        assert (user.totp_secret_enc, user.totp_enabled_at) == ("", None)
        assert not (await db.exec(select(RecoveryCode))).all()
