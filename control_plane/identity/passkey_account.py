"""Managing one's own passkeys: add (after the password), list, rename, remove (after the
password and a current code).

The API (``identity/passkey_routes.py``) and the security page (``ui/passkey_pages.py``) both
call these, so the re-authentication, the login rate limits and the audit records are one.
Passkeys are added only while two-factor authentication is on (so the account has recovery
codes); each change commits and is audited as ``passkey.*``, naming the passkey, never a key.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.client_ip import client_ip
from control_plane.db.models import User
from control_plane.db.passkey_models import Passkey
from control_plane.identity.login import recheck
from control_plane.identity.mfa import mfa_enabled
from control_plane.identity.passkeys import register, registration_options
from control_plane.runtime import Runtime
from orgplane_wire.problems import Conflict, NotFound, ProblemError

Req = Request[Any, Any, Any]


def session_binding(claims: dict[str, Any]) -> str:
    """What a registration challenge is bound to: the sign-in (refresh-token family) of the
    caller's access token, or the token itself when it names none."""
    return str(claims.get("sid") or claims.get("jti") or "")[:64]


def _audit(db: AsyncSession, request: Req, user: User, action: str, passkey: Passkey) -> None:
    record(
        db,
        action=action,
        actor=user,
        target_type="passkey",
        target_id=passkey.id,
        ip=client_ip(request),
        name=passkey.name,
    )


def _require_mfa(user: User) -> None:
    if not mfa_enabled(user):
        raise Conflict(
            "Turn on two-factor authentication (an authenticator app) before adding a passkey: "
            "its recovery codes are what signs you in if you lose every passkey.",
            code="mfa_not_enabled",
        )


async def start_registration(
    request: Req, runtime: Runtime, db: AsyncSession, user: User, password: str, binding: str
) -> dict[str, Any]:
    """After the password: options for ``navigator.credentials.create()``, whose challenge is
    bound to the caller's session (``binding``)."""
    _require_mfa(user)
    await recheck(request, runtime, db, user, password)
    options = await registration_options(db, runtime.settings, user, binding)
    await db.commit()
    return options


async def finish_registration(
    request: Req,
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    binding: str,
    credential: dict[str, Any],
    name: str,
) -> Passkey:
    """Keep the credential the browser created for the challenge of this session."""
    _require_mfa(user)
    try:
        passkey = await register(db, runtime.settings, user, binding, credential, name)
    except ProblemError:
        await db.commit()  # the challenge is spent even when the answer is refused
        raise
    _audit(db, request, user, "passkey.added", passkey)
    await db.commit()
    await db.refresh(passkey)
    return passkey


async def own_passkey(db: AsyncSession, user: User, passkey_id: str) -> Passkey:
    """One of the user's passkeys; 404 ``passkey_not_found`` for anyone else's."""
    row = (
        await db.exec(
            select(Passkey).where(col(Passkey.id) == passkey_id, col(Passkey.user_id) == user.id)
        )
    ).first()
    if row is None:
        raise NotFound("No such passkey.", code="passkey_not_found")
    return row


async def rename_passkey(
    request: Req, db: AsyncSession, user: User, passkey_id: str, name: str
) -> Passkey:
    """Give one of the user's passkeys a new name."""
    passkey = await own_passkey(db, user, passkey_id)
    passkey.name = name
    db.add(passkey)
    _audit(db, request, user, "passkey.renamed", passkey)
    await db.commit()
    await db.refresh(passkey)
    return passkey


async def remove_passkey(
    request: Req,
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    passkey_id: str,
    password: str,
    code: str,
) -> None:
    """Remove one of the user's passkeys: the password and a current code (or a recovery
    code) are needed, as for turning MFA off."""
    passkey = await own_passkey(db, user, passkey_id)
    await recheck(request, runtime, db, user, password, code)
    _audit(db, request, user, "passkey.removed", passkey)
    await db.delete(passkey)
    await db.commit()
