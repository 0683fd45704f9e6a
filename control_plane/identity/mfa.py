"""A second factor: TOTP (RFC 6238, through ``pyotp``) and single-use recovery codes.

* **Enrolment** makes a random 160-bit secret, stored encrypted with the deployment secret
  (:class:`~control_plane.security.secrets.SecretBox`, purpose ``orgplane totp v1``) and shown
  once with its ``otpauth://`` URI. It is a factor only once a code made from it is confirmed;
  the confirmation answers :data:`RECOVERY_CODES` recovery codes, shown once too.
* **A TOTP code** is 6 digits of a 30-second step; one step either side of now is accepted
  (clock drift). Each step is usable once per user: spending it is one conditional UPDATE
  (``totp_last_step < step``), so a replayed code, or the same code sent twice at once on two
  replicas, is refused.
* **A recovery code** is 16 characters from a 31-letter alphabet (79 bits), grouped by 4.
  It is stored as the SHA-256 of the user id and the code (79 random bits cannot be guessed
  however fast the hash, as for personal access tokens) and spent by a conditional UPDATE
  (``used_at IS NULL``).

Neither the secret nor a code is ever logged, audited or answered again.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from functools import cache
from typing import Final, Literal

import pyotp
from sqlalchemy import delete, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import RecoveryCode, User, utcnow
from control_plane.identity.passkeys import forget_passkeys
from control_plane.runtime import resolve_secret
from control_plane.settings import Settings
from orgplane_wire.problems import BadRequest, Conflict
from orgplane_wire.secret_box import SecretBox, hash_secret

PURPOSE: Final = "orgplane totp v1"
ISSUER: Final = "orgplane"
RECOVERY_CODES: Final = 10
RECOVERY_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_LENGTH: Final = 16
#: Time steps accepted either side of now (RFC 6238 §5.2 allows for clock drift).
DRIFT_STEPS: Final = 1
Factor = Literal["totp", "recovery"]


@cache
def _box(secret: str) -> SecretBox:
    return SecretBox(secret, purpose=PURPOSE)


def totp_box(settings: Settings) -> SecretBox:
    """The key TOTP secrets are encrypted with."""
    return _box(resolve_secret(settings))


def mfa_enabled(user: User) -> bool:
    """Whether the user signs in with a second factor."""
    return user.totp_enabled_at is not None


def begin_enrolment(settings: Settings, user: User) -> tuple[str, str]:
    """A new (unconfirmed) secret for ``user`` (set on the row, not committed): the base32
    secret and its ``otpauth://`` URI. 409 ``mfa_already_enabled`` while MFA is on."""
    if mfa_enabled(user):
        raise Conflict(
            "Two-factor authentication is already on; turn it off first.",
            code="mfa_already_enabled",
        )
    secret = pyotp.random_base32(32)
    user.totp_secret_enc = totp_box(settings).encrypt(secret.encode())
    user.updated_at = utcnow()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return secret, uri


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose TOTP is ``code`` (within the drift), or None."""
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    here = totp.timecode(now)
    for step in range(here - DRIFT_STEPS, here + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def _spend_step(db: AsyncSession, user: User, step: int) -> bool:
    """Record ``step`` as used; False if it (or a later one) was used already."""
    spent = await db.exec(
        update(User)
        .where(col(User.id) == user.id, col(User.totp_last_step) < step)
        .values(totp_last_step=step)
        .returning(col(User.id))
        .execution_options(synchronize_session=False)
    )
    return spent.first() is not None


async def spend_totp(
    db: AsyncSession, settings: Settings, user: User, code: str, now: datetime | None = None
) -> bool:
    """Whether ``code`` is a TOTP of the user's secret not used before (it is spent now)."""
    if not user.totp_secret_enc:
        return False
    secret = totp_box(settings).decrypt(user.totp_secret_enc).decode()
    step = _matching_step(secret, code.replace(" ", ""), now or utcnow())
    return step is not None and await _spend_step(db, user, step)


def _normal_recovery(code: str) -> str:
    return code.replace("-", "").replace(" ", "").lower()


def _recovery_hash(user_id: str, code: str) -> str:
    return hash_secret(f"{user_id}:{_normal_recovery(code)}")


def new_recovery_codes(db: AsyncSession, user: User) -> list[str]:
    """:data:`RECOVERY_CODES` new codes for ``user`` (rows added, not committed)."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        code = "-".join(raw[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4))
        db.add(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(user.id, code)))
        codes.append(code)
    return codes


async def spend_recovery_code(db: AsyncSession, user: User, code: str) -> bool:
    """Whether ``code`` is an unused recovery code of the user (it is spent now)."""
    if len(_normal_recovery(code)) != RECOVERY_LENGTH:
        return False
    spent = await db.exec(
        update(RecoveryCode)
        .where(
            col(RecoveryCode.user_id) == user.id,
            col(RecoveryCode.code_hash) == _recovery_hash(user.id, code),
            col(RecoveryCode.used_at).is_(None),
        )
        .values(used_at=utcnow())
        .returning(col(RecoveryCode.id))
        .execution_options(synchronize_session=False)
    )
    return spent.first() is not None


async def spend_factor(
    db: AsyncSession, settings: Settings, user: User, code: str, now: datetime | None = None
) -> Factor | None:
    """Which factor ``code`` is (a TOTP or a recovery code, spent now), or None."""
    if not mfa_enabled(user) or not code or len(code) > 64:
        return None
    if await spend_totp(db, settings, user, code, now):
        return "totp"
    if await spend_recovery_code(db, user, code):
        return "recovery"
    return None


async def confirm_enrolment(
    db: AsyncSession, settings: Settings, user: User, code: str, now: datetime | None = None
) -> list[str]:
    """Turn MFA on with a first code of the new secret; the recovery codes (not committed)."""
    if mfa_enabled(user):
        raise Conflict("Two-factor authentication is already on.", code="mfa_already_enabled")
    if not user.totp_secret_enc:
        raise Conflict(
            "Start with POST /api/v1/me/mfa/totp to get a secret.", code="mfa_not_started"
        )
    if not await spend_totp(db, settings, user, code, now):
        raise BadRequest(
            "That code is not correct (or was used already): enter the current code.",
            code="invalid_otp",
            field="code",
        )
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
    user.totp_enabled_at = now or utcnow()
    user.updated_at = user.totp_enabled_at
    db.add(user)
    return new_recovery_codes(db, user)


async def disable_mfa(db: AsyncSession, user: User) -> None:
    """Forget the secret, the recovery codes and the passkeys (not committed)."""
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
    await forget_passkeys(db, user.id)
    user.totp_secret_enc = ""
    user.totp_enabled_at = None
    user.updated_at = utcnow()
    db.add(user)
