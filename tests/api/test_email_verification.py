"""Email verification: a self-signed-up account joins no org before it proves its email.

Messages travel through a real SMTP server in the test process (tests/support/smtp.py); the
tests read them and follow their links.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlmodel import select

from control_plane.db.engine import make_engine
from control_plane.db.migrate import upgrade
from control_plane.db.models import EmailToken, Membership, User
from control_plane.settings import Settings
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.orgs import make_org, user
from tests.support.smtp import (
    Mailbox,
    delivered,
    links_of,
    smtp_env,
    text_of,
    token_of,
)


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """SQLite: these flows are the same SQL on PostgreSQL (the conditional spend of a link is
    the refresh tokens', run on both in tests/api/test_tokens_refresh_race.py)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def settings(make_settings: Any, smtp: tuple[int, Mailbox]) -> Settings:
    """Self sign-up on, email through the test's SMTP server."""
    result: Settings = make_settings(
        ORGPLANE_ALLOW_SIGNUP="true",
        ORGPLANE_EMAIL_VERIFICATION_TTL="7200",
        **smtp_env(smtp[0]),
    )
    return result


async def mail_to(box: Mailbox, address: str, count: int = 1, subject: str = "Confirm") -> Any:
    return await delivered(box, address, subject, count)


async def signup(client: AsyncTestClient[Any], email: str, **extra: Any) -> dict[str, Any]:
    made = await client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, **extra}
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def test_an_unverified_account_cannot_join_an_org(
    client: AsyncTestClient[Any], smtp: tuple[int, Mailbox]
) -> None:
    """Security (issue 21): with sign-up on, anyone could sign up with someone else's email
    and be added to an org, or accept an invite meant for that person.

    Seen failing on the old code (b19d092, this test run there): the self-signed-up account
    accepted the invite (200, not 403), and ``POST /orgs/acme/members`` added the second one
    (201, not 403)."""
    box = smtp[1]
    alice = await user(client, "alice@example.com")
    await make_org(client, alice, "acme")
    await signup(client, "victim@example.com")
    await signup(client, "other@example.com")
    squatter = await login(client, "victim@example.com")
    invite = (
        await client.post(
            "/api/v1/orgs/acme/invites",
            headers=alice,
            json={"email": "victim@example.com", "role": "admin"},
        )
    ).json()
    accepted = await client.post(
        "/api/v1/invites/accept", headers=squatter, json={"token": invite["token"]}
    )
    assert_problem(accepted, 403, "email_unverified")
    added = await client.post(
        "/api/v1/orgs/acme/members",
        headers=alice,
        json={"email": "other@example.com", "role": "member"},
    )
    assert_problem(added, 403, "email_unverified")
    async with direct_db(client) as db:
        assert len((await db.exec(select(Membership))).all()) == 1  # alice's only
    # It signs in, and may make orgs of its own.
    own = await client.post("/api/v1/orgs", headers=squatter, json={"name": "Own", "slug": "own"})
    assert own.status_code == 202, own.text

    # The owner of the address follows the link mailed to it: then the invite works.
    (message,) = await mail_to(box, "victim@example.com")
    assert message["Subject"] == "Confirm your email for orgplane"
    invited = await mail_to(box, "victim@example.com", subject="invited")
    assert invite["mailed"] is True
    assert invite["token"] in text_of(invited[0])
    link = links_of(message)[0]
    assert link.startswith("http://127.0.0.1:8080/ui/verify-email#token=")
    page = await client.get(link.split("#")[0])
    assert page.status_code == 200
    assert "Confirm your email" in page.text
    verified = await client.post("/api/v1/auth/verify-email", json={"token": token_of(link)})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    again = await client.post("/api/v1/auth/verify-email", json={"token": token_of(link)})
    assert_problem(again, 410, "link_used")
    accepted = await client.post(
        "/api/v1/invites/accept", headers=squatter, json={"token": invite["token"]}
    )
    assert accepted.status_code == 200, accepted.text


async def test_signup_with_an_invite_waits_for_verification(
    client: AsyncTestClient[Any], smtp: tuple[int, Mailbox]
) -> None:
    """The invite token given at sign-up is checked, not spent: the account is unverified."""
    alice = await user(client, "alice@example.com")
    await make_org(client, alice, "acme")
    invite = (
        await client.post(
            "/api/v1/orgs/acme/invites",
            headers=alice,
            json={"email": "new@example.com", "role": "member"},
        )
    ).json()
    made = await signup(client, "new@example.com", invite_token=invite["token"])
    assert made["email_verified"] is False
    newcomer = await login(client, "new@example.com")
    assert (await client.get("/api/v1/me/orgs", headers=newcomer)).json()["items"] == []
    (message,) = await mail_to(smtp[1], "new@example.com")
    token = token_of(links_of(message)[0])
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": token})
    ).status_code == 200
    accepted = await client.post(
        "/api/v1/invites/accept", headers=newcomer, json={"token": invite["token"]}
    )
    assert accepted.status_code == 200, accepted.text


async def test_accounts_made_by_admins_are_verified_and_links_expire(
    client: AsyncTestClient[Any], admin: dict[str, str], smtp: tuple[int, Mailbox]
) -> None:
    made = await client.post(
        "/api/v1/users", headers=admin, json={"email": "made@example.com", "password": PASSWORD}
    )
    assert made.json()["email_verified"] is True
    await signup(client, "self@example.com")
    async with direct_db(client) as db:
        row = (await db.exec(select(EmailToken))).one()
        # ORGPLANE_EMAIL_VERIFICATION_TTL=7200
        assert round((row.expires_at - row.created_at).total_seconds()) == 7200
        assert len(row.token_hash) == 64
        row.expires_at = row.created_at
        db.add(row)
        await db.commit()
    (message,) = await mail_to(smtp[1], "self@example.com")
    token = token_of(links_of(message)[0])
    assert row.token_hash not in text_of(message)
    expired = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert_problem(expired, 410, "link_expired")
    bogus = await client.post("/api/v1/auth/verify-email", json={"token": "opm_nope"})
    assert_problem(bogus, 400, "invalid_link")
    # A new link on demand (the old one is dead); a verified account has nothing to resend.
    me = await login(client, "self@example.com")
    resent = await client.post("/api/v1/me/email-verification", headers=me)
    assert resent.status_code == 202, resent.text
    second = (await mail_to(smtp[1], "self@example.com", 2))[1]
    ok = await client.post(
        "/api/v1/auth/verify-email", json={"token": token_of(links_of(second)[0])}
    )
    assert ok.status_code == 200, ok.text
    done = await client.post("/api/v1/me/email-verification", headers=me)
    assert_problem(done, 409, "already_verified")


async def test_an_email_change_takes_effect_when_the_new_address_confirms(
    client: AsyncTestClient[Any], smtp: tuple[int, Mailbox]
) -> None:
    bob = await user(client, "bob@example.com")
    wrong = await client.post(
        "/api/v1/me/email", headers=bob, json={"email": "b@example.org", "password": "nope"}
    )
    assert_problem(wrong, 401, "invalid_credentials")
    taken = await client.post(
        "/api/v1/me/email",
        headers=bob,
        json={"email": "bob@example.com", "password": PASSWORD},
    )
    assert_problem(taken, 409, "same_email")
    asked = await client.post(
        "/api/v1/me/email", headers=bob, json={"email": "b@example.org", "password": PASSWORD}
    )
    assert asked.status_code == 202, asked.text
    assert (await client.get("/api/v1/me", headers=bob)).json()["email"] == "bob@example.com"
    (message,) = await mail_to(smtp[1], "b@example.org")
    # Someone else's address is refused at once, or when the link is followed if it was taken
    # meanwhile.
    await add_user(client, "carol@example.com")
    theirs = await client.post(
        "/api/v1/me/email",
        headers=bob,
        json={"email": "carol@example.com", "password": PASSWORD},
    )
    assert_problem(theirs, 409, "email_taken")
    asked = await client.post(
        "/api/v1/me/email", headers=bob, json={"email": "d@example.org", "password": PASSWORD}
    )
    (late,) = await mail_to(smtp[1], "d@example.org")
    await add_user(client, "d@example.org")
    lost = await client.post(
        "/api/v1/auth/verify-email", json={"token": token_of(links_of(late)[0])}
    )
    assert_problem(lost, 409, "email_taken")
    confirmed = await client.post(
        "/api/v1/auth/verify-email", json={"token": token_of(links_of(message)[0])}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == "b@example.org"
    assert confirmed.json()["email_verified"] is True
    await login(client, "b@example.org")


def test_existing_users_migrate_as_verified(tmp_path: Path) -> None:
    """Accounts that exist when the migration runs were made before verification existed."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'cp.db'}")

    async def run() -> Any:
        try:
            await upgrade(engine, "0002_user_session_version")
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO user (id, email, name, password_hash, is_platform_admin, "
                        "disabled, session_version, created_at, updated_at) VALUES ('u1', "
                        "'old@example.com', '', 'x', 0, 0, 1, '2026-01-01 00:00:00', "
                        "'2026-01-01 00:00:00')"
                    )
                )
            await upgrade(engine)
            async with engine.connect() as conn:
                return (await conn.execute(text("SELECT email_verified_at FROM user"))).scalar()
        finally:
            await engine.dispose()

    assert asyncio.run(run()) is not None
    assert User.model_fields["email_verified_at"].default is None
