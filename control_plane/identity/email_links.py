"""One-time links sent by email: password reset (``opw_``) and email verification (``opm_``).

Only the SHA-256 hash of a link's token is stored. A token is spent by a conditional
``UPDATE ... WHERE used_at IS NULL AND expires_at > now``, so of any number of requests racing
with it exactly one wins. Refusals: 400 ``invalid_link`` (unknown or malformed), 410
``link_used`` and ``link_expired``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import EmailToken, User, utcnow
from control_plane.security.secrets import new_secret
from orgplane_wire.problems import BadRequest, ProblemError
from orgplane_wire.secret_box import hash_secret

RESET: Final = "reset"
VERIFY: Final = "verify"
PREFIXES: Final = {RESET: "opw", VERIFY: "opm"}


class LinkGone(ProblemError):
    status, code, title = 410, "link_used", "Gone"


def issue_link(db: AsyncSession, *, user: User, purpose: str, email: str, ttl: int) -> str:
    """A new token for ``user`` (added to ``db``, not committed); only its hash is kept."""
    token = new_secret(PREFIXES[purpose])
    db.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose,
            email=email,
            token_hash=hash_secret(token),
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
    )
    return token


async def spend_link(db: AsyncSession, *, token: str, purpose: str) -> EmailToken:
    """Spend ``token`` (does not commit); the row it was, or 400 / 410."""
    row = None
    if token.startswith(PREFIXES[purpose] + "_") and len(token) <= 200:
        query = select(EmailToken).where(
            col(EmailToken.token_hash) == hash_secret(token), col(EmailToken.purpose) == purpose
        )
        row = (await db.exec(query)).first()
    if row is None:
        raise BadRequest("This link is not valid.", code="invalid_link", field="token")
    now = utcnow()
    if row.used_at is not None:
        raise LinkGone("This link was used already.", code="link_used")
    if row.expires_at <= now:
        raise LinkGone("This link has expired; ask for a new one.", code="link_expired")
    spent = await db.exec(
        update(EmailToken)
        .where(
            col(EmailToken.id) == row.id,
            col(EmailToken.used_at).is_(None),
            col(EmailToken.expires_at) > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session="fetch")
    )
    if spent.rowcount != 1:
        raise LinkGone("This link was used already.", code="link_used")
    return row


async def end_links(db: AsyncSession, *, user_id: str, purpose: str) -> None:
    """Spend every outstanding ``purpose`` link of the user (after a reset, say)."""
    await db.exec(
        update(EmailToken)
        .where(
            col(EmailToken.user_id) == user_id,
            col(EmailToken.purpose) == purpose,
            col(EmailToken.used_at).is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
