"""Two-factor authentication (TOTP) of one's own account, and an org's MFA requirement.

    POST   /api/v1/me/mfa/totp          {password}          a new secret, shown once
    POST   /api/v1/me/mfa/totp/confirm  {code}              MFA on; 10 recovery codes, shown once
    DELETE /api/v1/me/mfa/totp          {password, code}    MFA off (a TOTP or a recovery code)
    POST   /api/v1/me/mfa/recovery-codes {password, code}   10 new recovery codes, shown once
    DELETE /api/v1/users/{user_id}/mfa  {reason}            platform admins: someone else's MFA off
    PUT    /api/v1/orgs/{org_ref}/mfa-requirement {required} org admins and owners, staff,
                                                        signed in with a second factor

Secrets and codes are only in the answers that make them (``Cache-Control: no-store``); audit
events name what happened, never a secret or a code. The work is done in
:mod:`control_plane.identity.mfa_account` (shared with the UI pages).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.db.models import utcnow
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.identity.mfa_account import (
    admin_reset_mfa,
    regenerate_recovery_codes,
    start_totp,
    turn_off_totp,
)
from control_plane.identity.mfa_account import confirm_totp as confirm_totp_code
from control_plane.orgs.guards import OrgAccessDep, needs_role
from control_plane.tokens.mfa_gate import has_second_factor, subject_amr
from control_plane.users.schemas import (
    ConfirmBody,
    MfaResetBody,
    Password,
    SecondFactorBody,
    Strict,
)
from orgplane_wire.problems import Forbidden

NO_STORE = {"Cache-Control": "no-store"}


class EnrolBody(Strict):
    password: Password


class Enrolment(msgspec.Struct):
    #: The base32 secret, for typing into an authenticator app: shown once.
    secret: str
    #: The same as an ``otpauth://totp/...`` URI (for a QR code): shown once.
    otpauth_uri: str


class RecoveryCodes(msgspec.Struct):
    #: Single-use codes for when the authenticator is lost: shown once, stored hashed.
    recovery_codes: list[str]


class MfaRequirementBody(Strict):
    required: bool


class MfaRequirement(msgspec.Struct):
    org_id: str
    require_mfa: bool


@post("/api/v1/me/mfa/totp", status_code=HTTP_201_CREATED, tags=["identity"])
async def enrol_totp(
    request: Request[Any, Any, Any],
    data: JSONBody[EnrolBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> Response[Enrolment]:
    """Start TOTP enrolment (re-authenticating with the password): a new secret, shown once.
    It becomes a second factor with ``POST /api/v1/me/mfa/totp/confirm``."""
    secret, uri = await start_totp(request, runtime, db, principal.user, data.password)
    return Response(Enrolment(secret, uri), status_code=HTTP_201_CREATED, headers=NO_STORE)


@post("/api/v1/me/mfa/totp/confirm", status_code=HTTP_200_OK, tags=["identity"])
async def confirm_totp(
    request: Request[Any, Any, Any],
    data: JSONBody[ConfirmBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> Response[RecoveryCodes]:
    """Turn MFA on with the authenticator's current code; answers the recovery codes once."""
    codes = await confirm_totp_code(request, runtime, db, principal.user, data.code)
    return Response(RecoveryCodes(codes), headers=NO_STORE)


@delete("/api/v1/me/mfa/totp", status_code=HTTP_204_NO_CONTENT, tags=["identity"])
async def disable_totp(
    request: Request[Any, Any, Any],
    data: JSONBody[SecondFactorBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> None:
    """Turn MFA off: the password and a current code (or a recovery code) are needed."""
    await turn_off_totp(request, runtime, db, principal.user, data.password, data.code)


@post("/api/v1/me/mfa/recovery-codes", status_code=HTTP_200_OK, tags=["identity"])
async def regenerate_codes(
    request: Request[Any, Any, Any],
    data: JSONBody[SecondFactorBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> Response[RecoveryCodes]:
    """New recovery codes (the password and a current code, or a recovery code): answered
    once; every earlier code stops working. 409 ``mfa_not_enabled`` without MFA."""
    user = principal.user
    codes = await regenerate_recovery_codes(request, runtime, db, user, data.password, data.code)
    return Response(RecoveryCodes(codes), headers=NO_STORE)


@delete("/api/v1/users/{user_id:str}/mfa", status_code=HTTP_204_NO_CONTENT, tags=["identity"])
async def reset_user_mfa(
    user_id: FromPath[str],
    data: JSONBody[MfaResetBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> None:
    """Turn off another user's MFA (platform admins; a reason is audited): their recovery
    codes go and every session of theirs ends; they are emailed when mail is configured."""
    await admin_reset_mfa(db, runtime, actor, user_id, data.reason.strip())


@put(
    "/api/v1/orgs/{org_ref:str}/mfa-requirement",
    tags=["identity"],
    opt=needs_role("admin", to="change whether the org requires MFA"),
)
async def put_mfa_requirement(
    data: JSONBody[MfaRequirementBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> MfaRequirement:
    """Switch whether members and staff need a sign-in with a second factor to enter the org
    (org admins and owners, and platform admins, each signed in with a second factor: who
    has none cannot lock themselves out, nor weaken the org); audited as ``org.require_mfa``."""
    if not has_second_factor(subject_amr(actor.principal.claims, None)):
        raise Forbidden(
            "Sign in with a second factor to change whether the org requires one.",
            code="mfa_required",
        )
    org = access.org
    if org.require_mfa != data.required:
        org.require_mfa = data.required
        org.updated_at = utcnow()
        db.add(org)
        record(
            db,
            action="org.require_mfa",
            actor=actor.user,
            org_id=org.id,
            target_type="org",
            target_id=org.id,
            ip=actor.ip,
            required=data.required,
        )
    await db.commit()
    return MfaRequirement(org.id, org.require_mfa)


ROUTES = [
    enrol_totp,
    confirm_totp,
    disable_totp,
    regenerate_codes,
    reset_user_mfa,
    put_mfa_requirement,
]
