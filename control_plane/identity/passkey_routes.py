"""Passkeys (WebAuthn) of one's own account: a second factor beside TOTP.

    POST   /api/v1/me/passkeys/registration {password}          options for
                                                navigator.credentials.create(), a new challenge
    POST   /api/v1/me/passkeys         {name, credential}       the created credential, kept
    GET    /api/v1/me/passkeys                                  the caller's passkeys
    PATCH  /api/v1/me/passkeys/{id}    {name}                   renamed
    DELETE /api/v1/me/passkeys/{id}    {password, code}         removed

A challenge is single-use, expires after five minutes and is bound to the caller's sign-in.
Signing in with a passkey is the UI's second step (``ui/passkey_login.py``). The work is done
in :mod:`control_plane.identity.passkey_account` (shared with the UI pages).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.db.passkey_models import Passkey
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.identity.passkey_account import (
    finish_registration,
    remove_passkey,
    rename_passkey,
    session_binding,
    start_registration,
)
from control_plane.identity.passkeys import user_passkeys
from control_plane.users.schemas import Password, SecondFactorBody, Strict

NO_STORE = {"Cache-Control": "no-store"}
PasskeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"\S")]


class RegistrationBody(Strict):
    password: Password


class RegistrationOptions(msgspec.Struct):
    #: ``PublicKeyCredentialCreationOptions`` as JSON (binary values base64url), for
    #: ``navigator.credentials.create({publicKey: ...})`` once decoded.
    options: dict[str, Any]


class NewPasskeyBody(Strict):
    name: PasskeyName
    #: The ``PublicKeyCredential`` the browser created, as JSON (``credential.toJSON()``).
    credential: dict[str, Any]


class RenameBody(Strict):
    name: PasskeyName


class PasskeyOut(msgspec.Struct):
    id: str
    name: str
    transports: list[str]
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: Passkey) -> PasskeyOut:
        """The public view of a passkey (no credential ID, no key)."""
        return cls(row.id, row.name, row.transports.split(), row.created_at, row.last_used_at)


@post("/api/v1/me/passkeys/registration", status_code=HTTP_201_CREATED, tags=["identity"])
async def passkey_registration(
    request: Request[Any, Any, Any],
    data: JSONBody[RegistrationBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> Response[RegistrationOptions]:
    """Start adding a passkey (re-authenticating with the password; two-factor
    authentication must be on, 409 ``mfa_not_enabled``): the creation options."""
    binding = session_binding(principal.claims)
    options = await start_registration(request, runtime, db, principal.user, data.password, binding)
    return Response(RegistrationOptions(options), status_code=HTTP_201_CREATED, headers=NO_STORE)


@post("/api/v1/me/passkeys", status_code=HTTP_201_CREATED, tags=["identity"])
async def add_passkey(
    request: Request[Any, Any, Any],
    data: JSONBody[NewPasskeyBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> PasskeyOut:
    """Keep the credential created for this session's challenge (400 ``invalid_passkey`` when
    it does not check out); audited as ``passkey.added``."""
    binding = session_binding(principal.claims)
    row = await finish_registration(
        request, runtime, db, principal.user, binding, data.credential, data.name.strip()
    )
    return PasskeyOut.of(row)


@get("/api/v1/me/passkeys", tags=["identity"])
async def list_passkeys(principal: Caller, db: DB) -> list[PasskeyOut]:
    """The caller's passkeys, oldest first."""
    return [PasskeyOut.of(row) for row in await user_passkeys(db, principal.user.id)]


@patch("/api/v1/me/passkeys/{passkey_id:str}", tags=["identity"])
async def patch_passkey(
    request: Request[Any, Any, Any],
    passkey_id: FromPath[str],
    data: JSONBody[RenameBody],
    principal: Caller,
    db: DB,
) -> PasskeyOut:
    """Rename one of the caller's passkeys."""
    row = await rename_passkey(request, db, principal.user, passkey_id, data.name.strip())
    return PasskeyOut.of(row)


@delete("/api/v1/me/passkeys/{passkey_id:str}", status_code=HTTP_204_NO_CONTENT, tags=["identity"])
async def delete_passkey(
    request: Request[Any, Any, Any],
    passkey_id: FromPath[str],
    data: JSONBody[SecondFactorBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> None:
    """Remove one of the caller's passkeys: the password and a current code (or a recovery
    code); audited as ``passkey.removed``."""
    user = principal.user
    await remove_passkey(request, runtime, db, user, passkey_id, data.password, data.code)


ROUTES = [passkey_registration, add_passkey, list_passkeys, patch_passkey, delete_passkey]
