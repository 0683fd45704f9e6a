"""Control-plane access tokens (RFC 9068 JWTs) and opaque, rotating refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import PersonalToken, RefreshToken, User, new_id, utcnow
from control_plane.runtime import Runtime
from control_plane.security.secrets import new_secret
from control_plane.signing.jws import sign
from orgplane_wire.secret_box import hash_secret

CLIENT_ID = "orgplane"
REFRESH_PREFIX = "opr"
#: RFC 8176 ``amr`` of a sign-in with a password alone.
PASSWORD_ONLY: tuple[str, ...] = ("pwd",)


@dataclass(frozen=True)
class TokenPair:
    """What a login or a refresh answers."""

    access_token: str
    expires_in: int
    refresh_token: str
    #: The refresh-token family: one per sign-in, the same across refreshes (claim ``sid``).
    session_id: str = ""


async def issue_access_token(
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    *,
    session_id: str | None = None,
    amr: tuple[str, ...] = PASSWORD_ONLY,
) -> str:
    """A signed access token for ``user`` with ``aud`` = the control plane; ``sid`` names the
    sign-in (refresh-token family) it belongs to, which the UI binds its CSRF token to, and
    ``amr`` (RFC 8176) how that sign-in was authenticated: ``["pwd"]`` or ``["pwd", "otp"]``."""
    key = await runtime.keyring.signing_key(db)
    claims: dict[str, Any] = {
        "iss": runtime.issuer,
        "aud": runtime.audience,
        "sub": user.id,
        "client_id": CLIENT_ID,
        "scope": "openid orgplane",
        "token_use": "access",
        "sv": user.session_version,
        "amr": list(amr),
    }
    if session_id:
        claims["sid"] = session_id
    token, _ = sign(claims, key, ttl=runtime.settings.tokens.access_token_ttl)
    return token


def _new_refresh(
    runtime: Runtime, user_id: str, family_id: str, parent: str | None, amr: str
) -> tuple[str, RefreshToken]:
    value = new_secret(REFRESH_PREFIX)
    row = RefreshToken(
        family_id=family_id,
        user_id=user_id,
        token_hash=hash_secret(value),
        parent_id=parent,
        amr=amr,
        expires_at=utcnow() + timedelta(seconds=runtime.settings.tokens.refresh_token_ttl),
    )
    return value, row


async def login_tokens(
    runtime: Runtime, db: AsyncSession, user: User, *, amr: tuple[str, ...] = PASSWORD_ONLY
) -> TokenPair:
    """A fresh access token and a refresh token starting a new family (which keeps ``amr``
    across refreshes); commits."""
    family_id = new_id()
    value, row = _new_refresh(runtime, user.id, family_id, None, " ".join(amr))
    db.add(row)
    access = await issue_access_token(runtime, db, user, session_id=family_id, amr=amr)
    await db.commit()
    return TokenPair(access, runtime.settings.tokens.access_token_ttl, value, family_id)


class RefreshRefused(Exception):
    """The refresh token is unknown, expired, revoked or was already used."""


async def rotate_refresh(
    runtime: Runtime, db: AsyncSession, presented: str
) -> tuple[User, TokenPair]:
    """Spend ``presented`` and answer a new pair; a reused token revokes its family.

    Exactly one of any number of concurrent calls with the same token wins: the spend is a
    conditional UPDATE (``used_at IS NULL``) whose row count decides.
    """
    if not presented.startswith(REFRESH_PREFIX + "_") or len(presented) > 200:
        raise RefreshRefused("not a refresh token")
    digest = hash_secret(presented)
    now = utcnow()
    spent = await db.exec(
        update(RefreshToken)
        .where(
            col(RefreshToken.token_hash) == digest,
            col(RefreshToken.used_at).is_(None),
            col(RefreshToken.revoked_at).is_(None),
            col(RefreshToken.expires_at) > now,
        )
        .values(used_at=now)
        .returning(
            col(RefreshToken.id),
            col(RefreshToken.family_id),
            col(RefreshToken.user_id),
            col(RefreshToken.amr),
        )
    )
    won = spent.first()
    if won is None:
        family = await revoke_family_of(db, digest)
        if family is not None:
            # A spent or revoked token came back: it was stolen, or a client misbehaves.
            record(
                db,
                action="auth.refresh_reuse",
                outcome="failure",
                target_type="user",
                target_id=family[1],
                family_id=family[0],
            )
        await db.commit()
        raise RefreshRefused("refresh token invalid, expired or already used")
    row_id, family_id, user_id, amr = won
    user = await db.get(User, user_id)
    if user is None or user.disabled:
        await db.rollback()
        raise RefreshRefused("user disabled")
    value, row = _new_refresh(runtime, user_id, family_id, row_id, amr)
    db.add(row)
    methods = tuple(amr.split()) or PASSWORD_ONLY
    access = await issue_access_token(runtime, db, user, session_id=family_id, amr=methods)
    await db.commit()
    return user, TokenPair(access, runtime.settings.tokens.access_token_ttl, value, family_id)


async def revoke_family_of(db: AsyncSession, digest: str) -> tuple[str, str] | None:
    """Revoke every token of the family ``digest`` belongs to (reuse detection, logout).

    Answers the family id and its user id, or None for an unknown token.
    """
    found = (
        await db.exec(
            select(RefreshToken.family_id, RefreshToken.user_id).where(
                col(RefreshToken.token_hash) == digest
            )
        )
    ).first()
    if found is None:
        return None
    family_id, user_id = found
    await db.exec(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    return family_id, user_id


async def revoke_user_tokens(db: AsyncSession, user_id: str) -> None:
    """Revoke every refresh token and every personal access token of a user (password change,
    password reset, disable): ending all of a user's sessions leaves no script access behind,
    since whoever knew the old password could have made a personal access token with it."""
    now = utcnow()
    for table in (RefreshToken, PersonalToken):
        await db.exec(
            update(table)
            .where(col(table.user_id) == user_id, col(table.revoked_at).is_(None))
            .values(revoked_at=now)
        )
