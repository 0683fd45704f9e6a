"""Signing-key administration for platform admins, shared by the API
(``tokens/key_routes.py``) and the admin pages: list keys, start a rotation, retire a
compromised key at once."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.auth import Principal, require_platform_admin
from control_plane.runtime import Runtime
from control_plane.tokens.org_revocation import retire_key_everywhere
from control_plane.tokens.rotation import (
    KeyNotFound,
    KeyView,
    RotationPending,
    list_keys,
    retire_key_now,
    rotate_keys,
)
from orgplane_wire.problems import Conflict, NotFound


class KeyOut(msgspec.Struct):
    """A signing key's public facts; private material never leaves the database."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    active_from: datetime
    retire_after: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, view: KeyView) -> KeyOut:
        """The answer for ``view``."""
        return cls(
            view.kid,
            view.alg,
            view.state,
            view.created_at,
            view.active_from,
            view.retire_after,
            view.expires_at,
        )


async def keys_of(db: AsyncSession, principal: Principal) -> list[KeyOut]:
    """Every signing key and its state (platform admins only)."""
    require_platform_admin(principal)
    return [KeyOut.of(view) for view in await list_keys(db)]


async def start_rotation(runtime: Runtime, db: AsyncSession, actor: Actor) -> KeyOut:
    """Start a rotation (platform admins only); 409 ``rotation_pending`` while an earlier
    rotation's key does not sign yet."""
    require_platform_admin(actor.principal)
    try:
        view = await rotate_keys(runtime, db, actor=actor.user, ip=actor.ip)
    except RotationPending as exc:
        raise Conflict(f"A rotation is under way: {exc}.", code="rotation_pending") from None
    return KeyOut.of(view)


async def retire_now(runtime: Runtime, db: AsyncSession, actor: Actor, kid: str) -> KeyOut:
    """Retire ``kid`` now, here and at every instance (platform admins; 404 ``key_not_found``)."""
    require_platform_admin(actor.principal)
    try:
        view = await retire_key_now(runtime, db, kid=kid[:64], actor=actor.user, ip=actor.ip)
    except KeyNotFound:
        raise NotFound("No published signing key has that kid.", code="key_not_found") from None
    await retire_key_everywhere(runtime, db, kid=view.kid)
    return KeyOut.of(view)
