"""A user's own account: changing one's password (the API and the UI's password page)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.audit_trail import record
from control_plane.runtime import Runtime
from control_plane.security.passwords import verify_password
from control_plane.tokens.access import revoke_user_tokens
from control_plane.tokens.org_revocation import revoke_user_everywhere
from control_plane.users.schemas import ChangePasswordBody
from control_plane.users.service import set_password
from orgplane_wire.problems import Unauthenticated


async def change_own_password(
    db: AsyncSession, runtime: Runtime, actor: Actor, data: ChangePasswordBody
) -> None:
    """Change the actor's password; every token of theirs stops working (audited, committed)."""
    user = actor.user
    if not verify_password(data.current_password, user.password_hash):
        raise Unauthenticated("The current password is not correct.", code="invalid_credentials")
    set_password(user, data.new_password)
    user.session_version += 1  # every access token issued so far stops working
    db.add(user)
    await revoke_user_tokens(db, user.id)
    record(
        db,
        action="user.password_changed",
        actor=user,
        target_type="user",
        target_id=user.id,
        ip=actor.ip,
    )
    await db.commit()
    await revoke_user_everywhere(runtime, db, user)
