"""SMTP delivery: TLS modes, credentials, retries with backoff, giving up, two replicas sharing
the outbox, and a platform without SMTP saying so. A real SMTP server (aiosmtpd) runs in the
test process; faults are injected by it (temporary refusals) or by a closed port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select
from structlog.testing import capture_logs

from control_plane.app import create_app
from control_plane.db.models import OutboxMail, User, utcnow
from control_plane.mail.outbox import enqueue
from control_plane.mail.sender import MailSender
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.smtp import (
    Mailbox,
    delivered,
    html_of,
    links_of,
    make_certificate,
    smtp_env,
    smtp_server,
    text_of,
)
from tests.support.wait import eventually

SMTP_PASSWORD = "smtp-secret-do-not-log-7f3a"


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """SQLite, except where a test asks for both (the claim of a row by two replicas)."""
    return str(getattr(request, "param", "sqlite"))


BOTH = pytest.mark.parametrize(
    "db_backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        yield client


@asynccontextmanager
async def logged_app(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncTestClient[Any], list[Any]]]:
    """A client of an app on ``settings`` and the app's log lines so far (captured once the
    app configured logging)."""
    app = create_app(settings)
    with capture_logs() as logs:
        async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as client:
            yield client, logs


async def ask_reset(client: AsyncTestClient[Any], email: str) -> None:
    answer = await client.post("/api/v1/auth/password-reset", json={"email": email})
    assert answer.status_code == 202, answer.text


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that this process's TLS clients trust."""
    cert = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    return cert


async def test_starttls_with_credentials(
    make_settings: Any, certificate: tuple[Path, Path]
) -> None:
    """ORGPLANE_SMTP_TLS=starttls, ORGPLANE_SMTP_USERNAME / _PASSWORD and ORGPLANE_MAIL_FROM
    are what the server sees; the password appears in no log line."""
    with smtp_server(
        tls="starttls", certificate=certificate, credentials=("mailer", SMTP_PASSWORD)
    ) as (port, box):
        settings = make_settings(
            **smtp_env(
                port,
                ORGPLANE_SMTP_TLS="starttls",
                ORGPLANE_SMTP_USERNAME="mailer",
                ORGPLANE_SMTP_PASSWORD=SMTP_PASSWORD,
                ORGPLANE_MAIL_FROM="Platform <platform@example.net>",
                ORGPLANE_LOG_LEVEL="INFO",
            )
        )
        async with logged_app(settings) as (client, logs):
            assert (await client.get("/readyz")).json() == {"status": "ready", "mail": "smtp"}
            await add_user(client, "alice@example.com")
            await ask_reset(client, "alice@example.com")
            await eventually(lambda: box.messages, what="the message", timeout=20)
            await eventually(
                lambda: any(r["event"] == "mail sent" for r in logs),
                what="the log line of the delivery",
                timeout=20,
            )
    (message,) = box.messages
    assert box.logins == ["mailer"]
    assert box.recipients == [["alice@example.com"]]
    assert message["From"] == "Platform <platform@example.net>"
    assert message.get_content_type() == "multipart/alternative"
    link = links_of(message)[0]
    assert link in text_of(message)
    assert f'href="{link}"' in html_of(message)
    assert any(r["event"] == "mail sent" for r in logs)
    assert SMTP_PASSWORD not in repr(logs)


async def test_implicit_tls(make_settings: Any, certificate: tuple[Path, Path]) -> None:
    with smtp_server(tls="tls", certificate=certificate) as (port, box):
        settings = make_settings(**smtp_env(port, ORGPLANE_SMTP_TLS="tls"))
        async with app_client(settings) as client:
            await add_user(client, "bob@example.com")
            await ask_reset(client, "bob@example.com")
            await eventually(lambda: box.messages, what="the message over TLS", timeout=20)


@BOTH
async def test_a_temporary_refusal_is_retried_in_the_background(make_settings: Any) -> None:
    """ORGPLANE_MAIL_RETRY_SECONDS: the second attempt comes that long after the first."""
    with smtp_server() as (port, box):
        box.refuse_next = 1
        settings = make_settings(**smtp_env(port, ORGPLANE_MAIL_RETRY_SECONDS="0.2"))
        async with app_client(settings) as client:
            await add_user(client, "carol@example.com")
            await ask_reset(client, "carol@example.com")
            await eventually(lambda: box.messages, what="the retried message", timeout=20)
            async with direct_db(client) as db:
                row = await eventually(
                    lambda: _sent_row(db), what="the row marked sent", timeout=20
                )
    assert box.refused == 1
    assert row.attempts == 2
    assert row.last_error == ""
    assert row.message_enc == ""


async def _sent_row(db: Any) -> OutboxMail | None:
    db.expire_all()
    row = (await db.exec(select(OutboxMail))).one()
    return row if row.sent_at is not None else None


async def test_backoff_doubles_and_the_message_is_given_up(make_settings: Any) -> None:
    """ORGPLANE_MAIL_RETRY_SECONDS=100 and ORGPLANE_MAIL_MAX_ATTEMPTS=3: the waits are 100 s,
    then 200 s, and the third refusal gives the message up and wipes it."""
    with smtp_server() as (port, box):
        box.refuse_all = True
        settings = make_settings(
            **smtp_env(port, ORGPLANE_MAIL_RETRY_SECONDS="100", ORGPLANE_MAIL_MAX_ATTEMPTS="3")
        )
        async with app_client(settings):
            pass  # migrated (its own sender stops with it)
        runtime = Runtime.build(settings)
        sender = MailSender(runtime)
        try:
            async with runtime.sessions() as db:
                row = enqueue(db, settings, kind="password_reset", to="dan@example.com", **_reset())
                await db.commit()
            for attempt, wait in ((1, 100), (2, 200)):
                before = utcnow()
                assert await sender.deliver_due() == 1
                after = utcnow()
                stored = await _row(runtime, row.id)
                assert stored.attempts == attempt
                assert "451" in stored.last_error
                low, high = before.timestamp() + wait, after.timestamp() + wait
                assert low <= stored.next_attempt_at.timestamp() <= high
                assert await sender.deliver_due() == 0  # not due before its time
                await _make_due(runtime, row.id)
            assert await sender.deliver_due() == 1
            stored = await _row(runtime, row.id)
        finally:
            await runtime.close()
    assert stored.attempts == 3
    assert stored.failed_at is not None
    assert stored.message_enc == ""
    assert box.refused == 3
    assert box.messages == []


def _reset() -> dict[str, Any]:
    return {"email": "x", "link": "http://x/#token=t", "ttl_minutes": 60, "by_admin": False}


async def _row(runtime: Runtime, mail_id: str) -> OutboxMail:
    async with runtime.sessions() as db:
        row = await db.get(OutboxMail, mail_id)
        assert row is not None
        return row


async def _make_due(runtime: Runtime, mail_id: str) -> None:
    async with runtime.sessions() as db:
        row = await db.get(OutboxMail, mail_id)
        assert row is not None
        row.next_attempt_at = utcnow()
        db.add(row)
        await db.commit()


@BOTH
async def test_two_replicas_send_each_message_once(make_settings: Any) -> None:
    """Two senders (two runtimes, as two replicas) drain one outbox at the same time; the lease
    on each row lets exactly one of them hand it to SMTP."""
    with smtp_server() as (port, box):
        settings = make_settings(**smtp_env(port))
        async with app_client(settings):
            pass  # migrated
        replicas = [Runtime.build(settings), Runtime.build(settings)]
        try:
            async with replicas[0].sessions() as db:
                for i in range(24):
                    enqueue(db, settings, kind="password_reset", to=f"u{i}@example.com", **_reset())
                await db.commit()
            senders = [MailSender(r) for r in replicas]

            async def drain(sender: MailSender) -> int:
                total = 0
                while tried := await sender.deliver_due():
                    total += tried
                return total

            counts = await asyncio.gather(*(drain(s) for s in senders))
        finally:
            for r in replicas:
                await r.close()
    assert sum(counts) == 24
    assert sorted(r[0] for r in box.recipients) == sorted(f"u{i}@example.com" for i in range(24))
    assert len({m["Message-ID"] for m in box.messages}) == 24


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_server_holds_up_no_request(make_settings: Any) -> None:
    """The request answers once the row is committed; the failed attempt is on the row."""
    port = _closed_port()
    settings = make_settings(**smtp_env(0, ORGPLANE_SMTP_PORT=str(port)))
    async with app_client(settings) as client:
        await add_user(client, "erin@example.com")
        await ask_reset(client, "erin@example.com")
        async with direct_db(client) as db:

            async def tried() -> OutboxMail | None:
                db.expire_all()
                row = (await db.exec(select(OutboxMail))).one()
                return row if row.attempts else None

            row = await eventually(tried, what="a failed attempt", timeout=20)
    assert row.sent_at is None
    assert row.failed_at is None
    assert f"port {port}" in row.last_error, row.last_error


@pytest.fixture
def no_smtp(make_settings: Any) -> Settings:
    result: Settings = make_settings(ORGPLANE_ALLOW_SIGNUP="true")
    return result


async def test_without_smtp_the_flows_that_need_mail_say_so(no_smtp: Settings) -> None:
    async with logged_app(no_smtp) as (client, logs):
        ready = (await client.get("/readyz")).json()
        reset = await client.post("/api/v1/auth/password-reset", json={"email": "a@b.cd"})
        signup = await client.post(
            "/api/v1/auth/signup", json={"email": "new@example.com", "password": PASSWORD}
        )
        await add_user(client, "root@example.com", admin=True)
        admin = await login(client, "root@example.com")
        me = (await client.get("/api/v1/me", headers=admin)).json()
        sent = await client.post(f"/api/v1/users/{me['id']}/password-reset", headers=admin)
        org = await client.post(
            "/api/v1/orgs", headers=admin, json={"name": "Acme", "slug": "acme"}
        )
        assert org.status_code == 202
        invite = await client.post(
            "/api/v1/orgs/acme/invites",
            headers=admin,
            json={"email": "x@example.com", "role": "member"},
        )
        async with direct_db(client) as db:
            users = (await db.exec(select(User.email))).all()
            outbox = (await db.exec(select(OutboxMail))).all()
    assert ready == {"status": "ready", "mail": "not configured"}
    for answer in (reset, signup, sent):
        assert_problem(answer, 403, "mail_not_configured")
    assert list(users) == ["root@example.com"]  # the sign-up created nothing
    assert invite.status_code == 201
    assert invite.json()["mailed"] is False
    assert outbox == []
    assert any("ORGPLANE_SMTP_HOST is not set" in r["event"] for r in logs)


async def test_new_device_and_deletion_notices(
    make_settings: Any, smtp: tuple[int, Mailbox]
) -> None:
    """A sign-in from a device (user agent + IP network) the account never used mails it; the
    account's first device does not. Scheduling an org's deletion mails its owners."""
    port, box = smtp
    async with app_client(make_settings(**smtp_env(port))) as client:
        await add_user(client, "fay@example.com")
        for agent in ("Laptop/1.0", "Laptop/1.0", "Phone/2.0"):
            answer = await client.post(
                "/api/v1/auth/login",
                json={"email": "fay@example.com", "password": PASSWORD},
                headers={"User-Agent": agent},
            )
            assert answer.status_code == 200
        notice = await delivered(box, "fay@example.com", "New sign-in")
        fay = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        made = await client.post("/api/v1/orgs", headers=fay, json={"name": "Acme", "slug": "acme"})
        assert made.status_code == 202
        deleting = await client.delete("/api/v1/orgs/acme?confirm=acme", headers=fay)
        assert deleting.status_code == 202, deleting.text
        deletion = await delivered(box, "fay@example.com", "deletion")
    assert len(notice) == 1
    assert "Phone/2.0" in text_of(notice[0])
    assert "/ui/password/forgot" in links_of(notice[0])[0]
    assert deletion[0]["Subject"] == "Acme is scheduled for deletion"
    assert links_of(deletion[0])[0] == "http://127.0.0.1:8080/ui/orgs/acme"
