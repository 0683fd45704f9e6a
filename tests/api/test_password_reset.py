"""Self-service and admin-sent password reset, through a real SMTP server in the test process:
the tests read the delivered messages and follow their links."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.app import create_app
from control_plane.cli.main import main
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.models import AuditEvent, EmailToken, OutboxMail
from control_plane.settings import Settings, get_settings
from control_plane.users.service import create_user
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.smtp import (
    Mailbox,
    delivered,
    html_of,
    links_of,
    smtp_env,
    text_of,
    token_of,
)
from tests.support.tokens import TOKEN_URL, login_body
from tests.ui.forms import csrf_token, submit, ui_login

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """SQLite: these flows are the same SQL on PostgreSQL (the conditional spend of a link is
    the refresh tokens', run on both in tests/api/test_tokens_refresh_race.py)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def settings(make_settings: Any, smtp: tuple[int, Mailbox]) -> Settings:
    result: Settings = make_settings(
        ORGPLANE_PASSWORD_RESET_TTL="600", ORGPLANE_LOGIN_RATE_LIMIT="4", **smtp_env(smtp[0])
    )
    return result


async def reset_mail(box: Mailbox, address: str) -> Any:
    return (await delivered(box, address, "Reset your"))[0]


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_a_reset_link_sets_the_password_and_ends_every_session(
    client: AsyncTestClient[Any], smtp: tuple[int, Mailbox]
) -> None:
    await add_user(client, "alice@example.com")
    laptop = await login_body(client, "alice@example.com")
    phone = await login_body(client, "alice@example.com")
    asked = await client.post("/api/v1/auth/password-reset", json={"email": "Alice@Example.com"})
    assert asked.status_code == 202, asked.text
    message = await reset_mail(smtp[1], "alice@example.com")
    assert message["Subject"] == "Reset your orgplane password"
    assert message["From"] == "orgplane <noreply@example.com>"
    link = links_of(message)[0]
    assert link.startswith("http://127.0.0.1:8080/ui/password/reset#token=opw_")
    assert link in html_of(message)
    assert "10 minutes" in text_of(message)
    async with direct_db(client) as db:
        row = (await db.exec(select(EmailToken))).one()
    assert round((row.expires_at - row.created_at).total_seconds()) == 600
    assert token_of(link) not in row.token_hash

    page = await client.get(link.split("#")[0])
    assert page.status_code == 200
    assert 'name="new_password"' in page.text
    weak = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token_of(link), "new_password": "x"}
    )
    assert_problem(weak, 400, "weak_password")  # and the link still works:
    done = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token_of(link), "new_password": NEW_PASSWORD},
    )
    assert done.status_code == 200, done.text
    for session in (laptop, phone):
        assert_problem(await client.get("/api/v1/me", headers=bearer(session)), 401)
        refreshed = await client.post(
            TOKEN_URL,
            data={"grant_type": "refresh_token", "refresh_token": session["refresh_token"]},
        )
        assert refreshed.status_code == 400
    old = await client.post(
        "/api/v1/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
    )
    assert_problem(old, 401, "invalid_credentials")
    await login(client, "alice@example.com", NEW_PASSWORD)
    again = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token_of(link), "new_password": "yet another passphrase"},
    )
    assert_problem(again, 410, "link_used")
    async with direct_db(client) as db:
        actions = (await db.exec(select(AuditEvent.action))).all()
    assert {"user.password_reset_requested", "user.password_reset"} <= set(actions)


async def test_the_answer_is_the_same_whether_or_not_the_email_has_an_account(
    client: AsyncTestClient[Any], admin: dict[str, str], smtp: tuple[int, Mailbox]
) -> None:
    carol = await add_user(client, "carol@example.com")
    await add_user(client, "gone@example.com")
    off = await client.patch(f"/api/v1/users/{carol}", headers=admin, json={"disabled": True})
    assert off.status_code == 200
    answers = [
        await client.post("/api/v1/auth/password-reset", json={"email": email})
        for email in ("gone@example.com", "nobody@example.com", "carol@example.com", "not-email")
    ]
    assert {(a.status_code, a.text) for a in answers} == {(answers[0].status_code, answers[0].text)}
    assert answers[0].status_code == 202
    await reset_mail(smtp[1], "gone@example.com")
    async with direct_db(client) as db:
        kinds = (await db.exec(select(OutboxMail.recipient))).all()
        audit = (
            await db.exec(
                select(AuditEvent.outcome).where(
                    col(AuditEvent.action) == "user.password_reset_requested"
                )
            )
        ).all()
    assert list(kinds) == ["gone@example.com"]  # the disabled and unknown ones get nothing
    assert sorted(audit) == ["no_account", "no_account", "no_account", "success"]


async def test_reset_requests_are_rate_limited_per_email_and_per_ip(
    client: AsyncTestClient[Any],
) -> None:
    """ORGPLANE_LOGIN_RATE_LIMIT=4 here: the login limiter counts reset requests too (apart
    from sign-in attempts)."""
    statuses = [
        (await client.post("/api/v1/auth/password-reset", json={"email": f"u{i}@example.com"}))
        for i in range(5)
    ]
    assert [s.status_code for s in statuses] == [202, 202, 202, 202, 429]
    assert_problem(statuses[4], 429, "rate_limited")
    # Sign-in has its own counters.
    await add_user(client, "dave@example.com")
    await login(client, "dave@example.com")


async def test_a_platform_admin_sends_a_reset_link(
    client: AsyncTestClient[Any], admin: dict[str, str], smtp: tuple[int, Mailbox]
) -> None:
    erin = await add_user(client, "erin@example.com")
    frank = await login(client, "erin@example.com")
    refused = await client.post(f"/api/v1/users/{erin}/password-reset", headers=frank)
    assert_problem(refused, 403)
    missing = await client.post("/api/v1/users/nope/password-reset", headers=admin)
    assert_problem(missing, 404, "user_not_found")
    sent = await client.post(f"/api/v1/users/{erin}/password-reset", headers=admin)
    assert sent.status_code == 202, sent.text
    message = await reset_mail(smtp[1], "erin@example.com")
    assert "a platform admin sent this link" in text_of(message)
    async with direct_db(client) as db:
        event = (
            await db.exec(
                select(AuditEvent).where(col(AuditEvent.action) == "user.password_reset_sent")
            )
        ).one()
    assert event.target_id == erin
    # The same from the admin UI's users page.
    await ui_login(client, "root@example.com")
    users = await client.get("/ui/admin/users")
    assert f'action="/ui/admin/users/{erin}/password-reset"' in users.text
    clicked = await submit(client, "/ui/admin/users", f"/ui/admin/users/{erin}/password-reset")
    assert clicked.status_code == 303
    assert clicked.headers["location"] == "/ui/admin/users?done=reset_link_sent"
    assert len(await delivered(smtp[1], "erin@example.com", "Reset your", 2)) == 2
    assert event.actor_email == "root@example.com"


async def test_the_ui_forms_reset_a_password(
    client: AsyncTestClient[Any], smtp: tuple[int, Mailbox]
) -> None:
    await add_user(client, "gina@example.com")
    login_page = await client.get("/ui/login")
    assert 'href="/ui/password/forgot"' in login_page.text
    forged = await client.post(
        "/ui/password/forgot", data={"email": "gina@example.com", "_csrf_token": "forged"}
    )
    assert forged.status_code == 403
    asked = await submit(
        client, "/ui/password/forgot", "/ui/password/forgot", email="gina@example.com"
    )
    assert asked.status_code == 200
    assert "on its way" in asked.text
    link = links_of(await reset_mail(smtp[1], "gina@example.com"))[0]
    path, token = link.removeprefix("http://127.0.0.1:8080").split("#token=")
    assert (await client.get(path)).status_code == 200
    csrf = await csrf_token(client, path)
    bad = await client.post(
        "/ui/password/reset",
        data={"_csrf_token": csrf, "token": "opw_nope", "new_password": NEW_PASSWORD},
    )
    assert bad.status_code == 400
    assert "not valid" in bad.text
    done = await client.post(
        "/ui/password/reset",
        data={"_csrf_token": csrf, "token": token, "new_password": NEW_PASSWORD},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/login?done=password_reset"
    notice = await client.get("/ui/login?done=password_reset")
    assert "Your password was reset" in notice.text
    await login(client, "gina@example.com", NEW_PASSWORD)


async def test_an_expired_link_is_refused(
    client: AsyncTestClient[Any], smtp: tuple[int, Mailbox]
) -> None:
    await add_user(client, "hank@example.com")
    await client.post("/api/v1/auth/password-reset", json={"email": "hank@example.com"})
    token = token_of(links_of(await reset_mail(smtp[1], "hank@example.com"))[0])
    async with direct_db(client) as db:
        row = (await db.exec(select(EmailToken))).one()
        row.expires_at = row.created_at
        db.add(row)
        await db.commit()
    late = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_problem(late, 410, "link_expired")
    await login(client, "hank@example.com")  # unchanged


def test_the_cli_queues_a_reset_that_a_running_control_plane_sends(
    settings: Settings, smtp: tuple[int, Mailbox], capsys: pytest.CaptureFixture[str]
) -> None:
    """``orgplane admin reset-password EMAIL`` writes to the outbox; the server delivers it."""

    async def add() -> None:
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as db:
                await create_user(db, email="ivy@example.com", password=PASSWORD)
                await db.commit()
        finally:
            await engine.dispose()

    asyncio.run(add())
    get_settings.cache_clear()
    try:
        assert main(["admin", "reset-password", "ivy@example.com"]) == 0
        assert "queued a password-reset link to ivy@example.com" in capsys.readouterr().out
        assert main(["admin", "reset-password", "nobody@example.com"]) == 1
    finally:
        get_settings.cache_clear()

    async def deliver() -> str:
        async with AsyncTestClient(create_app(settings)):
            message = await reset_mail(smtp[1], "ivy@example.com")
        return text_of(message)

    assert "a platform admin sent this link" in asyncio.run(deliver())
