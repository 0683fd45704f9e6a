"""Signing-key administration API for platform admins (:mod:`control_plane.tokens.key_admin`)."""

from __future__ import annotations

from litestar import get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from control_plane.actor import ActorDep
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.tokens.key_admin import KeyOut, keys_of, retire_now, start_rotation


@get("/api/v1/keys", tags=["tokens"])
async def get_keys(principal: Caller, db: DB) -> list[KeyOut]:
    """Every signing key and its state (platform admins only)."""
    return await keys_of(db, principal)


@post("/api/v1/keys/rotate", status_code=HTTP_201_CREATED, tags=["tokens"])
async def post_rotate(actor: ActorDep, runtime: RuntimeDep, db: DB) -> KeyOut:
    """Start a rotation: the new key is published now and signs after one JWKS cache lifetime.

    409 ``rotation_pending`` while an earlier rotation's key does not sign yet.
    """
    return await start_rotation(runtime, db, actor)


@post("/api/v1/keys/{kid:str}/retire", status_code=HTTP_200_OK, tags=["tokens"])
async def post_retire(kid: FromPath[str], actor: ActorDep, runtime: RuntimeDep, db: DB) -> KeyOut:
    """Emergency: the key leaves the JWKS and stops verifying now, at the control plane and at
    every instance following its revocation channel (platform admins; 404 ``key_not_found``)."""
    return await retire_now(runtime, db, actor, kid)


ROUTES = [get_keys, post_rotate, post_retire]
