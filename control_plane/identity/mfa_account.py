"""Managing one's own second factor, and a platform admin's reset of someone else's.

The API (``identity/mfa_routes.py``) and the security page (``ui/mfa_pages.py``) both call
these, so the re-authentication, the rate limits (the login limits, through
:func:`~control_plane.identity.login.recheck`) and the audit record are one. Each commits.
Secrets and codes are returned to the caller to show once; they are never audited or logged.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.audit_trail import record
from control_plane.auth import require_platform_admin
from control_plane.client_ip import client_ip
from control_plane.db.models import RecoveryCode, User, utcnow
from control_plane.identity.login import recheck
from control_plane.identity.mfa import (
    begin_enrolment,
    confirm_enrolment,
    disable_mfa,
    mfa_enabled,
    new_recovery_codes,
)
from control_plane.mail.outbox import enqueue
from control_plane.runtime import Runtime
from control_plane.tokens.access import revoke_user_tokens
from control_plane.tokens.org_revocation import revoke_user_everywhere
from orgplane_wire.problems import Conflict, NotFound

Req = Request[Any, Any, Any]


def _audit(db: AsyncSession, request: Req, user: User, action: str) -> None:
    record(
        db, action=action, actor=user, target_type="user", target_id=user.id, ip=client_ip(request)
    )


def _require_on(user: User) -> None:
    if not mfa_enabled(user):
        raise Conflict("Two-factor authentication is not on.", code="mfa_not_enabled")


async def start_totp(
    request: Req, runtime: Runtime, db: AsyncSession, user: User, password: str
) -> tuple[str, str]:
    """Start enrolment after the password: the new secret and its ``otpauth://`` URI."""
    await recheck(request, runtime, db, user, password)
    secret, uri = begin_enrolment(runtime.settings, user)
    db.add(user)
    _audit(db, request, user, "mfa.totp_started")
    await db.commit()
    return secret, uri


async def confirm_totp(
    request: Req, runtime: Runtime, db: AsyncSession, user: User, code: str
) -> list[str]:
    """Turn MFA on with a code of the new secret: the recovery codes, to show once."""
    codes = await confirm_enrolment(db, runtime.settings, user, code)
    _audit(db, request, user, "mfa.totp_enabled")
    await db.commit()
    return codes


async def turn_off_totp(
    request: Req, runtime: Runtime, db: AsyncSession, user: User, password: str, code: str
) -> None:
    """Turn MFA off: the password and a current code (or a recovery code)."""
    _require_on(user)
    await recheck(request, runtime, db, user, password, code)
    await disable_mfa(db, user)
    _audit(db, request, user, "mfa.totp_disabled")
    await db.commit()


async def regenerate_recovery_codes(
    request: Req, runtime: Runtime, db: AsyncSession, user: User, password: str, code: str
) -> list[str]:
    """New recovery codes (the password and a current code, or a recovery code): every old
    code, used or not, stops working; the new ones are returned to show once."""
    _require_on(user)
    # The user's row first: two regenerations at once run one after the other (on PostgreSQL
    # each would otherwise lock the code it spends, then wait for the other's in the delete).
    # (SQLite has no FOR UPDATE: its transactions begin IMMEDIATE, one writer at a time.)
    await db.exec(select(col(User.id)).where(col(User.id) == user.id).with_for_update())
    await recheck(request, runtime, db, user, password, code)
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
    codes = new_recovery_codes(db, user)
    _audit(db, request, user, "mfa.recovery_codes_regenerated")
    await db.commit()
    return codes


async def admin_reset_mfa(
    db: AsyncSession, runtime: Runtime, actor: Actor, user_id: str, reason: str
) -> None:
    """A platform admin turns off another user's MFA (they lost the app and the codes): the
    secret and recovery codes go, every session and token of the user ends (as a password
    change), audited with the reason, and the user is told by email when mail is configured.
    Not for one's own account (409 ``self_mfa_reset``): that needs one's own factor."""
    require_platform_admin(actor.principal)
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    if user.id == actor.user.id:
        raise Conflict(
            "You cannot reset your own two-factor authentication: turn it off with your "
            "password and a code, or ask another platform admin.",
            code="self_mfa_reset",
        )
    _require_on(user)
    await disable_mfa(db, user)
    user.session_version += 1  # every access token issued so far stops working
    await revoke_user_tokens(db, user.id)
    record(
        db,
        action="mfa.admin_reset",
        actor=actor.user,
        target_type="user",
        target_id=user.id,
        ip=actor.ip,
        reason=reason,
    )
    if runtime.settings.mail.enabled:
        enqueue(
            db,
            runtime.settings,
            kind="mfa_reset",
            to=user.email,
            email=user.email,
            at=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        )
    await db.commit()
    await revoke_user_everywhere(runtime, db, user)
