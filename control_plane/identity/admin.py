"""User administration by platform admins: list, create, update, send a reset link.

The API (``identity/routes.py``, ``identity/recovery_routes.py``) and the admin pages
(``ui/admin_pages.py``) both call these, so the access rule and the audit record are one.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.audit_trail import record
from control_plane.auth import Principal, require_platform_admin
from control_plane.db.models import User, utcnow
from control_plane.identity.recovery import send_reset
from control_plane.mail.outbox import require_mail
from control_plane.pagination import after
from control_plane.runtime import Runtime
from control_plane.tokens.access import revoke_user_tokens
from control_plane.tokens.org_revocation import revoke_user_everywhere
from control_plane.users.schemas import CreateUserBody, UpdateUserBody, UserOut
from control_plane.users.service import create_user, normalize_email
from orgplane_wire.cursors import Page, check_limit, encode_cursor
from orgplane_wire.problems import Conflict, NotFound


async def users_page(
    db: AsyncSession, principal: Principal, *, limit: int, cursor: str | None, q: str | None
) -> Page[UserOut]:
    """Every user (platform admins only), by email, keyset-paginated."""
    require_platform_admin(principal)
    query = select(User)
    if q:
        query = query.where(col(User.email).contains(normalize_email(q)))
    query = after(query, col(User.email), col(User.id), cursor).limit(check_limit(limit) + 1)
    rows = list((await db.exec(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].email, rows[-1].id) if more else None
    return Page([UserOut.of(u) for u in rows], nxt)


async def admin_create(db: AsyncSession, actor: Actor, data: CreateUserBody) -> User:
    """Create a user (platform admins only; audited, committed)."""
    require_platform_admin(actor.principal)
    user = await create_user(
        db,
        email=data.email,
        password=data.password,
        name=data.name,
        is_platform_admin=data.is_platform_admin,
    )
    record(
        db,
        action="user.create",
        actor=actor.user,
        target_type="user",
        target_id=user.id,
        ip=actor.ip,
    )
    await db.commit()
    return user


async def admin_update(
    db: AsyncSession, runtime: Runtime, actor: Actor, user_id: str, data: UpdateUserBody
) -> User:
    """Rename, disable or enable a user, or change staff rights (platform admins only)."""
    require_platform_admin(actor.principal)
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    if user.id == actor.user.id and (data.disabled or data.is_platform_admin is False):
        raise Conflict(
            "You cannot disable yourself or drop your own staff rights.", code="self_lockout"
        )
    if data.name is not None:
        user.name = data.name.strip()
    if data.disabled is not None:
        user.disabled = data.disabled
        if data.disabled:
            await revoke_user_tokens(db, user.id)
    if data.is_platform_admin is not None:
        user.is_platform_admin = data.is_platform_admin
    user.updated_at = utcnow()
    db.add(user)
    changes = {f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not None}
    record(
        db,
        action="user.update",
        actor=actor.user,
        target_type="user",
        target_id=user.id,
        ip=actor.ip,
        changes=changes,
    )
    await db.commit()
    if data.disabled or data.is_platform_admin is False:
        await revoke_user_everywhere(runtime, db, user)
    return user


async def admin_send_reset(db: AsyncSession, runtime: Runtime, actor: Actor, user_id: str) -> None:
    """Mail a user a password-reset link (platform admins; audited). The password stays until
    the user follows the link."""
    require_platform_admin(actor.principal)
    user = await db.get(User, user_id)
    if user is None or user.disabled:
        raise NotFound("No active user matches.", code="user_not_found")
    require_mail(runtime.settings)
    send_reset(db, runtime.settings, user, by_admin=True)
    record(
        db,
        action="user.password_reset_sent",
        actor=actor.user,
        target_type="user",
        target_id=user.id,
        ip=actor.ip,
    )
    await db.commit()
