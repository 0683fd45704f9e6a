"""Signing-key administration for platform admins: list keys, start a rotation, retire a
compromised key at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from control_plane.auth import require_platform_admin
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.errors import Conflict, NotFound
from control_plane.identity.client_ip import client_ip
from control_plane.tokens.org_revocation import retire_key_everywhere
from control_plane.tokens.rotation import (
    KeyNotFound,
    KeyView,
    RotationPending,
    list_keys,
    retire_key_now,
    rotate_keys,
)


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


@get("/api/v1/keys", tags=["tokens"])
async def get_keys(principal: Caller, db: DB) -> list[KeyOut]:
    """Every signing key and its state (platform admins only)."""
    require_platform_admin(principal)
    return [KeyOut.of(view) for view in await list_keys(db)]


@post("/api/v1/keys/rotate", status_code=HTTP_201_CREATED, tags=["tokens"])
async def post_rotate(
    request: Request[Any, Any, Any], principal: Caller, runtime: RuntimeDep, db: DB
) -> KeyOut:
    """Start a rotation: the new key is published now and signs after one JWKS cache lifetime.

    409 ``rotation_pending`` while an earlier rotation's key does not sign yet.
    """
    require_platform_admin(principal)
    try:
        view = await rotate_keys(runtime, db, actor=principal.user, ip=client_ip(request))
    except RotationPending as exc:
        raise Conflict(f"A rotation is under way: {exc}.", code="rotation_pending") from None
    return KeyOut.of(view)


@post("/api/v1/keys/{kid:str}/retire", status_code=HTTP_200_OK, tags=["tokens"])
async def post_retire(
    request: Request[Any, Any, Any],
    kid: FromPath[str],
    principal: Caller,
    runtime: RuntimeDep,
    db: DB,
) -> KeyOut:
    """Emergency: the key leaves the JWKS and stops verifying now, at the control plane and at
    every instance following its revocation channel (platform admins; 404 ``key_not_found``)."""
    require_platform_admin(principal)
    try:
        view = await retire_key_now(
            runtime, db, kid=kid[:64], actor=principal.user, ip=client_ip(request)
        )
    except KeyNotFound:
        raise NotFound("No published signing key has that kid.", code="key_not_found") from None
    await retire_key_everywhere(runtime, db, kid=view.kid)
    return KeyOut.of(view)


ROUTES = [get_keys, post_rotate, post_retire]
