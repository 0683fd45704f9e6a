"""The SMTP sender: every replica runs one; a lease on each row keeps deliveries apart.

A pass takes the due rows (not sent, not given up, ``next_attempt_at`` passed, lease free or
expired) and claims each with a conditional ``UPDATE`` (PostgreSQL and SQLite alike), so two
replicas never hand the same message to SMTP at once. No database connection is held while
SMTP talks. A failure is retried after ``mail_retry_seconds``, doubling up to an hour, until
``mail_max_attempts``; an SMTP 5xx answer (a permanent refusal) gives up at once. A replica
that dies between the SMTP answer and its ``UPDATE`` leaves the lease to expire, and the
message is sent again: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from datetime import timedelta
from typing import Any, Final

import aiosmtplib
import structlog
from sqlalchemy import func, or_, update
from sqlmodel import col, select

from control_plane.db.models import OutboxMail, utcnow
from control_plane.db.types import utc
from control_plane.mail.outbox import outbox_box, register_sender, unregister_sender
from control_plane.runtime import Runtime

log = structlog.get_logger("orgplane.mail")

#: Seconds between passes when nothing wakes the sender (rows other replicas added, retries).
POLL_SECONDS: Final = 5.0
#: How long a claim on a row lasts: longer than one SMTP exchange can take.
LEASE_SECONDS: Final = 120.0
SMTP_TIMEOUT: Final = 30.0
BATCH: Final = 20
MAX_BACKOFF: Final = 3600.0


def _due(*, whenever: bool = False) -> Any:
    """Rows not sent, not given up and free of leases, whose attempt is due now (or at any
    time, ``whenever``)."""
    now = utcnow()
    conditions = [
        col(OutboxMail.sent_at).is_(None),
        col(OutboxMail.failed_at).is_(None),
        or_(col(OutboxMail.lease_expires_at).is_(None), col(OutboxMail.lease_expires_at) < now),
    ]
    if not whenever:
        conditions.append(col(OutboxMail.next_attempt_at) <= now)
    return conditions


def _describe(exc: BaseException) -> str:
    """What went wrong, for the row and the log (SMTP answers never echo credentials)."""
    return f"{type(exc).__name__}: {exc}"[:500]


class MailSender:
    """Delivers the outbox of ``runtime``'s database through its SMTP settings."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.owner = f"{runtime.replica_id}:mail"
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run a pass now (an outbox row was committed)."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Pass after pass until cancelled; a failed pass is logged and the loop goes on."""
        register_sender(self)
        try:
            while True:
                self._wake.clear()
                try:
                    while await self.deliver_due():
                        pass
                except Exception as exc:  # the database may be away; the next pass retries
                    log.warning("mail pass failed", error=_describe(exc))
                idle = await self._idle_for()  # first: a cancel here leaves no coroutine behind
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), idle)
        finally:
            unregister_sender(self)

    async def _idle_for(self) -> float:
        """Seconds until the next retry falls due, at most :data:`POLL_SECONDS`."""
        try:
            async with self.runtime.sessions() as db:
                query = select(func.min(OutboxMail.next_attempt_at)).where(*_due(whenever=True))
                soonest = (await db.exec(query)).one()
        except Exception:  # the database may be away: poll
            return POLL_SECONDS
        if soonest is None:
            return POLL_SECONDS
        soonest = utc(soonest)  # SQLite: an aggregate bypasses the column's type
        return min(max((soonest - utcnow()).total_seconds(), 0.05), POLL_SECONDS)

    async def deliver_due(self) -> int:
        """Send the due messages this replica can claim (at most one batch); how many it tried."""
        async with self.runtime.sessions() as db:
            ids = list((await db.exec(select(OutboxMail.id).where(*_due()).limit(BATCH))).all())
        tried = 0
        for mail_id in ids:
            claimed = await self._claim(mail_id)
            if claimed is not None:
                tried += 1
                await self._deliver(claimed)
        return tried

    async def _claim(self, mail_id: str) -> OutboxMail | None:
        async with self.runtime.sessions() as db:
            result = await db.exec(
                update(OutboxMail)
                .where(col(OutboxMail.id) == mail_id, *_due())
                .values(
                    lease_owner=self.owner,
                    lease_expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS),
                )
                .execution_options(synchronize_session=False)
            )
            await db.commit()
            if result.rowcount != 1:
                return None  # another replica has it, or it is no longer due
            return await db.get(OutboxMail, mail_id)

    async def _deliver(self, row: OutboxMail) -> None:
        mail = self.runtime.settings.mail
        try:
            message = email.message_from_bytes(
                outbox_box(self.runtime.settings).decrypt(row.message_enc),
                policy=email.policy.SMTP,
            )
            await aiosmtplib.send(
                message,
                hostname=mail.smtp_host,
                port=mail.smtp_port,
                use_tls=mail.smtp_tls == "tls",
                start_tls=mail.smtp_tls == "starttls",
                username=mail.smtp_username or None,
                password=mail.smtp_password.get_secret_value() or None,
                timeout=SMTP_TIMEOUT,
            )
        except Exception as exc:
            await self._failed(row, exc)
            return
        await self._finish(row, sent_at=utcnow(), message_enc="", last_error="")
        log.info("mail sent", mail_id=row.id, kind=row.kind, attempts=row.attempts + 1)

    async def _failed(self, row: OutboxMail, exc: Exception) -> None:
        mail = self.runtime.settings.mail
        attempts = row.attempts + 1
        permanent = isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500
        permanent = permanent or isinstance(exc, (aiosmtplib.SMTPRecipientsRefused, ValueError))
        error = _describe(exc)
        if permanent or attempts >= mail.mail_max_attempts:
            await self._finish(row, failed_at=utcnow(), message_enc="", last_error=error)
            log.error(
                "mail given up", mail_id=row.id, kind=row.kind, attempts=attempts, error=error
            )
            return
        delay = min(mail.mail_retry_seconds * 2 ** (attempts - 1), MAX_BACKOFF)
        await self._finish(
            row, next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=error
        )
        log.warning(
            "mail not sent, will retry",
            mail_id=row.id,
            kind=row.kind,
            attempts=attempts,
            retry_in=delay,
            error=error,
        )

    async def _finish(self, row: OutboxMail, **values: Any) -> None:
        async with self.runtime.sessions() as db:
            await db.exec(
                update(OutboxMail)
                .where(col(OutboxMail.id) == row.id, col(OutboxMail.lease_owner) == self.owner)
                .values(
                    attempts=row.attempts + 1,
                    lease_owner="",
                    lease_expires_at=None,
                    **values,
                )
                .execution_options(synchronize_session=False)
            )
            await db.commit()


@contextlib.asynccontextmanager
async def sending(runtime: Runtime) -> Any:
    """Run the sender while the app serves, when an SMTP server is configured."""
    if not runtime.settings.mail.enabled:
        log.warning(
            "email is off: ORGPLANE_SMTP_HOST is not set; password reset, email verification "
            "and sign-up answer 403 mail_not_configured, and no notification is sent"
        )
        yield
        return
    sender = runtime.mailer = MailSender(runtime)
    task = asyncio.create_task(sender.run_forever(), name="orgplane-mail")
    log.info(
        "email on", smtp_host=runtime.settings.mail.smtp_host, tls=runtime.settings.mail.smtp_tls
    )
    try:
        yield
    finally:
        task.cancel()
        # Bounded: shutdown never waits on an SMTP exchange (the lease lets another replica
        # retry a message this one was sending).
        await asyncio.wait({task}, timeout=10)
        runtime.mailer = None
