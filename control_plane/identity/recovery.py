"""Password reset and email verification: the rules behind the API and the UI.

* A reset request answers the same whatever the email (the caller learns nothing), and does
  about the same work: the link and the message are made either way, and one audit row is
  written; only for an account is the link stored and the message queued.
* Following a reset link sets the password and ends every session: refresh tokens revoked,
  access tokens stopped by the session version, org sessions ended. Other reset links of the
  account die with it. It also proves the email, which counts as verifying it.
* A verification link confirms the address it was sent to: the account's (after sign-up) or a
  new one (an email change, which takes effect only then).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import User, utcnow
from control_plane.identity.email_links import RESET, VERIFY, end_links, issue_link, spend_link
from control_plane.mail.messages import build_message
from control_plane.mail.outbox import enqueue, outbox_box, require_mail
from control_plane.ratelimit import Limit, Throttle
from control_plane.runtime import Runtime
from control_plane.security.secrets import new_secret
from control_plane.settings import Settings
from control_plane.tokens.access import revoke_user_tokens
from control_plane.tokens.org_revocation import revoke_user_everywhere
from control_plane.users.service import (
    checked_password,
    find_by_email,
    normalize_email,
    set_password,
)
from orgplane_wire.problems import Conflict
from orgplane_wire.secret_box import hash_secret


def reset_link(settings: Settings, token: str) -> str:
    """The UI page a reset token opens (in the fragment: never sent to a server or its logs)."""
    return f"{settings.server.base_url}/ui/password/reset#token={token}"


def verify_link(settings: Settings, token: str) -> str:
    """The UI page a verification token opens."""
    return f"{settings.server.base_url}/ui/verify-email#token={token}"


def send_reset(db: AsyncSession, settings: Settings, user: User, *, by_admin: bool = False) -> None:
    """Queue a reset link to ``user`` (not committed)."""
    ttl = settings.mail.password_reset_ttl
    token = issue_link(db, user=user, purpose=RESET, email=user.email, ttl=ttl)
    enqueue(
        db,
        settings,
        kind="password_reset",
        to=user.email,
        email=user.email,
        link=reset_link(settings, token),
        ttl_minutes=ttl // 60,
        by_admin=by_admin,
    )


def send_verification(db: AsyncSession, settings: Settings, user: User, email: str) -> None:
    """Queue a link confirming that ``email`` is ``user``'s (not committed)."""
    ttl = settings.mail.email_verification_ttl
    token = issue_link(db, user=user, purpose=VERIFY, email=email, ttl=ttl)
    enqueue(
        db,
        settings,
        kind="email_verification",
        to=email,
        email=email,
        link=verify_link(settings, token),
        ttl_hours=max(ttl // 3600, 1),
    )


def mail_request_counts(
    settings: Settings, what: str, *, ip: str, email: str
) -> tuple[tuple[Limit, str], ...]:
    """What one request for a mailed link (``what``: reset, verify) counts: per client IP and
    per email, each allowed ``ORGPLANE_LOGIN_RATE_LIMIT`` per login window, on counters apart
    from sign-in's."""
    sec = settings.security
    return (
        (Limit(f"{what}-ip", sec.login_rate_limit, sec.login_rate_window), ip),
        (Limit(f"{what}-email", sec.login_rate_limit, sec.login_rate_window), hash_secret(email)),
    )


async def request_reset(
    db: AsyncSession, settings: Settings, throttle: Throttle, *, email: str, ip: str
) -> None:
    """Mail a reset link if ``email`` is an active account's; the same outcome either way."""
    require_mail(settings)
    norm = normalize_email(email)
    await throttle.acquire(*mail_request_counts(settings, "reset", ip=ip, email=norm))
    user = await find_by_email(db, norm)
    if user is not None and not user.disabled:
        send_reset(db, settings, user)
        record(db, action="user.password_reset_requested", actor=user, ip=ip)
    else:
        # The same work as for an account: a token and a rendered, encrypted message.
        token = new_secret("opw")
        hash_secret(token)
        message = build_message(
            "password_reset",
            sender=settings.mail.mail_from,
            recipient=norm,
            platform="orgplane",
            base_url=settings.server.base_url,
            email=norm,
            link=reset_link(settings, token),
            ttl_minutes=settings.mail.password_reset_ttl // 60,
            by_admin=False,
        )
        outbox_box(settings).encrypt(bytes(message))
        record(
            db,
            action="user.password_reset_requested",
            outcome="no_account",
            actor_email=norm[:320],
            ip=ip,
        )
    await db.commit()


async def complete_reset(
    db: AsyncSession, runtime: Runtime, *, token: str, new_password: str, ip: str
) -> User:
    """Spend a reset link: new password, every session and token of the account ended."""
    checked_password(new_password)  # a weak password leaves the link usable
    link = await spend_link(db, token=token, purpose=RESET)
    user = await db.get(User, link.user_id)
    if user is None or user.disabled or user.email != link.email:
        await db.rollback()
        raise Conflict("This account can no longer be reset this way.", code="reset_refused")
    set_password(user, new_password)
    user.session_version += 1  # every access token issued so far stops working
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # the link reached this address
    db.add(user)
    await end_links(db, user_id=user.id, purpose=RESET)
    await revoke_user_tokens(db, user.id)
    record(
        db, action="user.password_reset", actor=user, target_type="user", target_id=user.id, ip=ip
    )
    await db.commit()
    await revoke_user_everywhere(runtime, db, user)
    return user


async def confirm_email(db: AsyncSession, *, token: str, ip: str) -> User:
    """Spend a verification link: the address it was sent to is the account's, verified."""
    link = await spend_link(db, token=token, purpose=VERIFY)
    user = await db.get(User, link.user_id)
    if user is None or user.disabled:
        await db.rollback()
        raise Conflict("This account cannot be verified.", code="verification_refused")
    if link.email != user.email:
        owner = await find_by_email(db, link.email)
        if owner is not None:
            await db.rollback()
            raise Conflict("Another account has this email now.", code="email_taken")
        old, user.email = user.email, link.email
        record(
            db,
            action="user.email_changed",
            actor=user,
            target_type="user",
            target_id=user.id,
            ip=ip,
            old_email=old,
        )
    user.email_verified_at = utcnow()
    user.updated_at = utcnow()
    db.add(user)
    record(
        db, action="user.email_verified", actor=user, target_type="user", target_id=user.id, ip=ip
    )
    try:
        await db.commit()
    except IntegrityError:  # the address was taken between the check and the commit
        await db.rollback()
        raise Conflict("Another account has this email now.", code="email_taken") from None
    return user
