"""The outbox: messages are rows added in the request's own transaction, sent later.

A row holds the whole message (it may carry a one-time link) encrypted with a key derived from
the deployment secret; the sender wipes it once the message is sent or given up. Adding a row
wakes this process's sender when the transaction commits; other replicas' senders find it on
their next poll.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import OutboxMail
from control_plane.mail.messages import DEFAULT_LOCALE, build_message
from control_plane.runtime import resolve_secret
from control_plane.settings import Settings
from control_plane.words import tenant_words
from orgplane_wire.problems import ProblemError
from orgplane_wire.secret_box import SecretBox

#: The process's sender (``MailSender``), woken when an outbox row is committed; set by the app.
_senders: list[Any] = []


class MailNotConfigured(ProblemError):
    status, code, title = 403, "mail_not_configured", "Email is not configured"


def require_mail(settings: Settings) -> None:
    """403 ``mail_not_configured`` unless an SMTP server is configured (a refusal of the
    platform's configuration, like ``signup_disabled``; not a failure to retry)."""
    if not settings.mail.enabled:
        raise MailNotConfigured(
            "This platform cannot send email (no SMTP server is configured), so this needs an "
            "administrator: ask a platform admin."
        )


@cache
def _box(secret: str) -> SecretBox:
    return SecretBox(secret, purpose="orgplane outbox v1")


def outbox_box(settings: Settings) -> SecretBox:
    """The key outbox messages are encrypted with."""
    return _box(resolve_secret(settings))


def register_sender(sender: Any) -> None:
    """Wake ``sender`` whenever this process commits an outbox row (until unregistered)."""
    _senders.append(sender)


def unregister_sender(sender: Any) -> None:
    """Stop waking ``sender``."""
    if sender in _senders:
        _senders.remove(sender)


def _wake_senders(_session: Any) -> None:
    for sender in list(_senders):
        sender.wake()


def enqueue(
    db: AsyncSession,
    settings: Settings,
    *,
    kind: str,
    to: str,
    locale: str = DEFAULT_LOCALE,
    **context: Any,
) -> OutboxMail:
    """Add the ``kind`` message to ``to`` to the outbox (sent after ``db`` commits)."""
    message = build_message(
        kind,
        sender=settings.mail.mail_from,
        recipient=to,
        locale=locale,
        platform="orgplane",
        base_url=settings.server.base_url,
        tenant=tenant_words(settings),
        **context,
    )
    row = OutboxMail(
        kind=kind, recipient=to, message_enc=outbox_box(settings).encrypt(bytes(message))
    )
    db.add(row)
    event.listen(db.sync_session, "after_commit", _wake_senders, once=True)
    return row
