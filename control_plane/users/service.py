"""User records: normalised emails, scrypt passwords."""

from __future__ import annotations

import re
import unicodedata

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import User, utcnow
from control_plane.security.passwords import hash_password, password_problem
from orgplane_wire.problems import BadRequest, Conflict, Forbidden

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{2,63}$")


def normalize_email(raw: str) -> str:
    """The canonical form used for uniqueness: NFKC, trimmed, lower case."""
    return unicodedata.normalize("NFKC", raw).strip().lower()


def checked_email(raw: str) -> str:
    """A normalised email, or 400 ``invalid_email``."""
    email = normalize_email(raw)
    if (
        len(email) > 320
        or not _EMAIL.match(email)
        or any(c in email for c in "<>\"'`\\,;")
        or any(ord(c) < 32 or ord(c) == 127 for c in email)
    ):  # NUL and other controls
        raise BadRequest("That is not a valid email address.", code="invalid_email", field="email")
    return email


def checked_password(password: str) -> str:
    """``password`` if acceptable, else 400 ``weak_password``."""
    problem = password_problem(password)
    if problem:
        raise BadRequest(problem, code="weak_password", field="password")
    return password


async def find_by_email(db: AsyncSession, email: str) -> User | None:
    """The user with this (normalised) email, if any."""
    return (await db.exec(select(User).where(User.email == normalize_email(email)))).first()


async def create_user(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    name: str = "",
    is_platform_admin: bool = False,
    verified: bool = True,
) -> User:
    """Add a user to ``db`` (flushed, not committed); 409 ``email_taken`` if it exists.

    ``verified``: the email counts as the user's (accounts made by a platform admin or at
    bootstrap); self sign-up makes unverified accounts."""
    email = checked_email(email)
    checked_password(password)
    if await find_by_email(db, email):
        raise Conflict("A user with that email exists.", code="email_taken", field="email")
    user = User(
        email=email,
        name=name.strip(),
        password_hash=hash_password(password),
        is_platform_admin=is_platform_admin,
        email_verified_at=utcnow() if verified else None,
    )
    db.add(user)
    await db.flush()
    return user


def set_password(user: User, password: str) -> None:
    """Replace ``user``'s password hash."""
    user.password_hash = hash_password(checked_password(password))
    user.updated_at = utcnow()


def require_verified(user: User) -> None:
    """403 ``email_unverified`` unless ``user``'s email is verified: an account that signed up
    itself joins no org before it proves its email (docs/identity.md)."""
    if user.email_verified_at is None:
        raise Forbidden(
            f"{user.email} is not verified yet: the account must follow the link mailed to it "
            "before it can join an org.",
            code="email_unverified",
        )
