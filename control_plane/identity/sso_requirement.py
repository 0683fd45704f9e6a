"""Whether a user's password sign-in is refused because an org of theirs requires single
sign-on (switched by ``control_plane.sso.require``; the login asks it here, below ``sso``)."""

from __future__ import annotations

from typing import Final

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Membership, Org, User

SSO_REQUIRED: Final = (
    "Your org requires single sign-on: sign in with your identity provider instead of a password."
)


async def sso_required_for(db: AsyncSession, user: User) -> bool:
    """True when ``user`` is a direct member of a live org that requires SSO (platform admins
    never are: they keep the password)."""
    if user.is_platform_admin:
        return False
    query = (
        select(Org.id)
        .join(Membership, col(Membership.org_id) == col(Org.id))
        .where(
            col(Membership.user_id) == user.id,
            col(Org.require_sso),
            col(Org.deleted_at).is_(None),
        )
        .limit(1)
    )
    return (await db.exec(query)).first() is not None
