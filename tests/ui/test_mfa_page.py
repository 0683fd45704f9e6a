"""The two-factor authentication page over plain HTTP (no JavaScript): turn TOTP on with the
password, the secret shown once and a first code, the recovery codes shown once, new codes,
and turning it off; the same checks, limits and audit records as the API."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, RecoveryCode, User
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.mfa import code, enable_mfa, login_answer, steady_step
from tests.ui.forms import submit, ui_login

Client = AsyncTestClient[Any]
PAGE = "/ui/account/mfa"
SECRET = re.compile(r'<code class="secret">([A-Z2-7]{32})</code>')
URI = re.compile(r'<code class="secret">(otpauth://[^<]+)</code>')
CODES = re.compile(r"<li><code>([a-z0-9]{4}(?:-[a-z0-9]{4}){3})</code></li>")


def _shown_once(answer: Any) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


async def _turn_on(client: Client) -> tuple[str, list[str]]:
    started = await submit(client, PAGE, f"{PAGE}/start", password=PASSWORD)
    _shown_once(started)
    secret = SECRET.findall(started.text)[0]
    uri = URI.findall(started.text)[0].replace("&amp;", "&")
    assert parse_qs(urlsplit(uri).query)["secret"] == [secret]
    steady_step()
    confirmed = await submit(client, PAGE, f"{PAGE}/confirm", code=code(secret, -1))
    _shown_once(confirmed)
    codes = CODES.findall(confirmed.text)
    assert len(codes) == len(set(codes)) == 10
    return secret, codes


async def test_turning_totp_on_and_off_from_the_page(client: Client) -> None:
    user_id = await add_user(client, "pia@example.com")
    await ui_login(client, "pia@example.com")
    off = await client.get(PAGE)
    assert off.status_code == 200
    assert "is <strong>off</strong>" in off.text
    assert 'action="/ui/account/mfa/start"' in off.text

    wrong = await submit(client, PAGE, f"{PAGE}/start", password="not it")
    assert wrong.status_code == 401
    assert "password is not correct" in wrong.text
    assert not SECRET.search(wrong.text)

    started = await submit(client, PAGE, f"{PAGE}/start", password=PASSWORD)
    _shown_once(started)
    secret = SECRET.findall(started.text)[0]
    # The secret is on the page once, and not in any form field.
    assert f'value="{secret}"' not in started.text
    bad = await submit(client, PAGE, f"{PAGE}/confirm", code="000000")
    assert bad.status_code == 400
    assert "not correct" in bad.text
    assert secret not in bad.text
    steady_step()
    confirmed = await submit(client, PAGE, f"{PAGE}/confirm", code=code(secret, -1))
    _shown_once(confirmed)
    codes = CODES.findall(confirmed.text)
    assert len(codes) == 10
    on = await client.get(PAGE)
    assert "is <strong>on</strong>" in on.text
    assert secret not in on.text
    assert not any(c in on.text for c in codes)
    assert_problem(await login_answer(client, "pia@example.com"), 401, "mfa_required")

    # New recovery codes, with a recovery code as the factor: the old ones stop working.
    renewed = await submit(client, PAGE, f"{PAGE}/recovery-codes", password=PASSWORD, code=codes[0])
    _shown_once(renewed)
    fresh = CODES.findall(renewed.text)
    assert len(fresh) == 10
    assert not set(fresh) & set(codes)
    assert_problem(await login_answer(client, "pia@example.com", codes[1]), 401, "invalid_otp")
    assert (await login_answer(client, "pia@example.com", fresh[0])).status_code == 200

    # Turning off needs the password and a code; a wrong one is shown beside its field.
    refused = await submit(client, PAGE, f"{PAGE}/disable", password=PASSWORD, code="000000")
    assert refused.status_code == 401
    assert 'id="e-code"' in refused.text
    assert "is <strong>on</strong>" in refused.text
    done = await submit(client, PAGE, f"{PAGE}/disable", password=PASSWORD, code=fresh[1])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{PAGE}?done=mfa_disabled"
    after = await client.get(done.headers["location"])
    assert "is <strong>off</strong>" in after.text
    assert (await login_answer(client, "pia@example.com")).status_code == 200

    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        assert user is not None
        assert (user.totp_secret_enc, user.totp_enabled_at) == ("", None)
        assert not (await db.exec(select(RecoveryCode))).all()
        events = (await db.exec(select(AuditEvent).order_by(col(AuditEvent.id)))).all()
    actions = [e.action for e in events]
    for action in (
        "mfa.totp_started",
        "mfa.totp_enabled",
        "mfa.recovery_codes_regenerated",
        "mfa.totp_disabled",
    ):
        assert action in actions
    reasons = sorted(e.detail["reason"] for e in events if e.action == "auth.reauth")
    assert reasons == ["invalid_credentials", "invalid_otp"]
    text = repr([e.detail for e in events])
    assert secret not in text
    assert not any(c in text for c in [*codes, *fresh])


async def test_bad_forms_change_nothing(client: Client) -> None:
    user_id = await add_user(client, "quin@example.com")
    await ui_login(client, "quin@example.com")
    empty = await submit(client, PAGE, f"{PAGE}/start", password="")
    assert empty.status_code == 400
    early = await submit(client, PAGE, f"{PAGE}/confirm", code="123456")
    assert early.status_code == 409
    long = await submit(client, PAGE, f"{PAGE}/confirm", code="1" * 65)
    assert long.status_code == 400
    not_on = await submit(client, PAGE, f"{PAGE}/disable", password=PASSWORD, code="123456")
    assert not_on.status_code == 409
    missing = await submit(client, PAGE, f"{PAGE}/recovery-codes", password=PASSWORD)
    assert missing.status_code == 400
    # Without the CSRF token nothing is done.
    forged = await client.post(f"{PAGE}/start", data={"password": PASSWORD})
    assert forged.status_code == 403
    assert not SECRET.search(forged.text)
    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        assert user is not None
        assert (user.totp_secret_enc, user.totp_enabled_at) == ("", None)
        assert not (await db.exec(select(RecoveryCode))).all()


async def test_the_page_needs_a_session_and_codes_work_after_turning_on(
    client: Client,
) -> None:
    first = await client.get(PAGE, follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"].startswith("/ui/login")
    await add_user(client, "rex@example.com")
    await ui_login(client, "rex@example.com")
    secret, codes = await _turn_on(client)
    steady_step()
    signed = await login_answer(client, "rex@example.com", code(secret))
    assert signed.status_code == 200, signed.text
    assert (await login_answer(client, "rex@example.com", codes[9])).status_code == 200


async def test_an_admin_turns_off_a_users_mfa_from_the_users_page(client: Client) -> None:
    user_id = await add_user(client, "sam@example.com")
    await enable_mfa(client, await login(client, "sam@example.com"))
    admin_id = await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    users = await client.get("/ui/admin/users")
    action = f"/ui/admin/users/{user_id}/mfa-reset"
    assert f'action="{action}"' in users.text
    assert f'action="/ui/admin/users/{admin_id}/mfa-reset"' not in users.text
    short = await submit(client, "/ui/admin/users", action, reason="  ")
    assert short.status_code == 400
    done = await submit(client, "/ui/admin/users", action, reason="ticket 7, called back")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/admin/users?done=mfa_reset"
    assert (await login_answer(client, "sam@example.com")).status_code == 200
    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        query = select(AuditEvent).where(col(AuditEvent.action) == "mfa.admin_reset")
        [event] = (await db.exec(query)).all()
    assert user is not None
    assert user.totp_enabled_at is None
    assert event.detail["reason"] == "ticket 7, called back"
