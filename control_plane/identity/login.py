"""Checking a sign-in: the password, then the second factor when the user has one.

Every attempt is counted by the login limits before anything is checked, a wrong one-time code
like a wrong password. The answers, all 401 problem+json:

* ``invalid_credentials``: unknown email, wrong password or disabled account, with MFA on or
  off (so the answer says nothing about the account's MFA);
* ``mfa_required``: the password was right, and a code (``otp``) is needed;
* ``invalid_otp``: the password was right and the code is wrong or was used already;
* ``invalid_passkey``: the password was right and the passkey's answer does not prove the user
  (:mod:`control_plane.identity.passkeys`; the audit record says why).
* ``sso_required``: the password was right, and the user is a member of an org that requires
  single sign-on (control_plane/sso/require.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from litestar import Request
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.client_ip import client_ip
from control_plane.db.models import User
from control_plane.identity.devices import note_device
from control_plane.identity.mfa import mfa_enabled, spend_factor
from control_plane.identity.passkeys import PasskeyRefused, verify_login
from control_plane.identity.sso_requirement import SSO_REQUIRED, sso_required_for
from control_plane.ratelimit import Limit
from control_plane.runtime import Runtime
from control_plane.security.passwords import dummy_hash, verify_password
from control_plane.tokens.access import PASSWORD_ONLY
from control_plane.users.service import find_by_email, normalize_email
from orgplane_wire.problems import Unauthenticated
from orgplane_wire.secret_box import hash_secret

BAD_LOGIN: Final = "The email or password is not correct."
MFA_REQUIRED: Final = "Enter the one-time code of your authenticator app (or a recovery code)."
BAD_OTP: Final = "The one-time code is not correct, or was used already."
BAD_PASSKEY: Final = "The passkey was not accepted: try again, or enter a one-time code."
WITH_OTP: Final = ("pwd", "otp")


@dataclass(frozen=True)
class SignIn:
    """A checked sign-in: who, and how (RFC 8176 ``amr`` values)."""

    user: User
    amr: tuple[str, ...]


def login_limits(runtime: Runtime) -> tuple[Limit, Limit, Limit]:
    """Failed logins allowed per (email, client IP), per client IP and per email.

    The tight limit is on the pair (OWASP's authentication cheat sheet: throttle failures per
    account, but a count per account alone lets anyone lock an account out). The per-IP limit
    stops one client spraying many accounts; the looser per-email limit stops a distributed
    attack, and only one spread over many IPs can reach it (docs/security.md).
    """
    sec = runtime.settings.security
    window = sec.login_rate_window
    return (
        Limit("login-pair", sec.login_rate_limit, window),
        Limit("login-ip", sec.login_rate_limit_ip, window),
        Limit("login-email", sec.login_rate_limit_account, window),
    )


def login_counts(runtime: Runtime, ip: str, email: str) -> tuple[tuple[Limit, str], ...]:
    """The (limit, key) pairs one attempt for ``email`` (normalised) from ``ip`` counts against."""
    account = hash_secret(email)
    pair, per_ip, per_account = login_limits(runtime)
    return ((pair, f"{account}:{ip}"), (per_ip, ip), (per_account, account))


async def _succeeded(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    counts: tuple[tuple[Limit, str], ...],
    **detail: Any,
) -> None:
    """Give back the attempt's counts, clear the pair's failures, audit and note the device."""
    await runtime.throttle.clear(*counts[0])
    for limit, key in counts[1:]:
        await runtime.throttle.release(limit, key)
    ip = client_ip(request)
    record(db, action="auth.login", actor=user, ip=ip, **detail)
    agent = request.headers.get("user-agent", "")
    await note_device(db, runtime.settings, user=user, ip=ip, user_agent=agent)


async def _second_factor(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    otp: str,
    counts: tuple[tuple[Limit, str], ...],
) -> SignIn:
    """Spend ``otp`` (its attempt already counted) or answer ``invalid_otp``."""
    factor = await spend_factor(db, runtime.settings, user, otp)
    if factor is None:
        record(
            db,
            action="auth.login",
            outcome="failure",
            actor=user,
            ip=client_ip(request),
            reason="invalid_otp",
        )
        await db.commit()
        raise Unauthenticated(BAD_OTP, code="invalid_otp")
    await _succeeded(request, runtime, db, user, counts, factor=factor)
    return SignIn(user, WITH_OTP)


async def authenticate_password(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    db: AsyncSession,
    email: str,
    password: str,
    otp: str | None = None,
) -> SignIn:
    """The sign-in these credentials make; the same 401 for any bad password, rate limited.

    The attempt is counted before the password is checked, in one atomic increment per limit,
    so concurrent attempts (on any replica) cannot all pass a check made before their failures
    are counted. A success gives its count back, and clears the pair's failures; so does a
    right password without the code MFA needs (``mfa_required``: the next attempt, with the
    code, is counted again). A wrong code keeps its count, as a wrong password does.
    """
    ip, norm = client_ip(request), normalize_email(email)
    counts = login_counts(runtime, ip, norm)
    await runtime.throttle.acquire(*counts)
    user = await find_by_email(db, norm)
    ok = verify_password(password, user.password_hash if user else dummy_hash())
    if user is None or not ok or user.disabled:
        record(db, action="auth.login", outcome="failure", actor_email=norm, ip=ip)
        await db.commit()
        raise Unauthenticated(BAD_LOGIN, code="invalid_credentials")
    if await sso_required_for(db, user):  # told only to whom knows the password
        for limit, key in counts:
            await runtime.throttle.release(limit, key)
        record(db, action="auth.login", outcome="failure", actor=user, ip=ip,
               reason="sso_required")  # fmt: skip
        await db.commit()
        raise Unauthenticated(SSO_REQUIRED, code="sso_required")
    if not mfa_enabled(user):
        await _succeeded(request, runtime, db, user, counts)
        return SignIn(user, PASSWORD_ONLY)
    if not otp:
        for limit, key in counts:
            await runtime.throttle.release(limit, key)
        raise Unauthenticated(MFA_REQUIRED, code="mfa_required")
    return await _second_factor(request, runtime, db, user, otp, counts)


async def authenticate_second_step(
    request: Request[Any, Any, Any], runtime: Runtime, db: AsyncSession, user: User, otp: str
) -> SignIn:
    """The second step of a sign-in whose password was checked moments ago (the UI's
    pending login): the code alone, counted by the same limits as a whole attempt."""
    if user.disabled or not mfa_enabled(user):
        raise Unauthenticated(BAD_LOGIN, code="invalid_credentials")
    counts = login_counts(runtime, client_ip(request), normalize_email(user.email))
    await runtime.throttle.acquire(*counts)
    return await _second_factor(request, runtime, db, user, otp, counts)


async def authenticate_passkey_step(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    binding: str,
    credential: Any,
) -> SignIn:
    """The second step of a pending sign-in with a passkey instead of a code: the answer of
    ``navigator.credentials.get()`` to the challenge bound to the pending sign-in
    (``binding``), counted by the login limits like a whole attempt."""
    if user.disabled or not mfa_enabled(user):
        raise Unauthenticated(BAD_LOGIN, code="invalid_credentials")
    counts = login_counts(runtime, client_ip(request), normalize_email(user.email))
    await runtime.throttle.acquire(*counts)
    try:
        method = await verify_login(db, runtime.settings, user, binding, credential)
    except PasskeyRefused as refused:
        record(
            db,
            action="auth.login",
            outcome="failure",
            actor=user,
            ip=client_ip(request),
            reason="invalid_passkey",
            passkey=refused.reason,
        )
        await db.commit()
        raise Unauthenticated(BAD_PASSKEY, code="invalid_passkey") from None
    await _succeeded(request, runtime, db, user, counts, factor="passkey")
    return SignIn(user, ("pwd", method))


async def recheck(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    password: str,
    otp: str | None = None,
) -> None:
    """Re-authenticate a signed-in user for a sensitive change: the password (401
    ``invalid_credentials``) and, when ``otp`` is given, a second factor (401 ``invalid_otp``),
    counted by the login limits like a sign-in (a stolen session cannot guess on); a failure
    is audited as ``auth.reauth``."""
    ip = client_ip(request)
    counts = login_counts(runtime, ip, normalize_email(user.email))
    await runtime.throttle.acquire(*counts)
    failure = None
    if not verify_password(password, user.password_hash):
        failure = Unauthenticated("The password is not correct.", code="invalid_credentials")
    elif otp is not None and await spend_factor(db, runtime.settings, user, otp) is None:
        failure = Unauthenticated(BAD_OTP, code="invalid_otp")
    if failure is not None:
        record(db, action="auth.reauth", outcome="failure", actor=user, ip=ip, reason=failure.code)
        await db.commit()
        raise failure
    for limit, key in counts:
        await runtime.throttle.release(limit, key)
