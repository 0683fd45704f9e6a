"""Password reset, email verification and email change: the API.

Reset and verification links point at the UI (``/ui/password/reset``, ``/ui/verify-email``);
these endpoints are what those pages, and API clients, call.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.client_ip import client_ip
from control_plane.deps import DB, RuntimeDep
from control_plane.identity.admin import admin_send_reset
from control_plane.identity.recovery import (
    complete_reset,
    confirm_email,
    mail_request_counts,
    request_reset,
    send_verification,
)
from control_plane.mail.outbox import require_mail
from control_plane.security.passwords import verify_password
from control_plane.users.schemas import (
    ChangeEmailBody,
    ResetPasswordBody,
    ResetRequestBody,
    UserOut,
    VerifyEmailBody,
)
from control_plane.users.service import checked_email, find_by_email
from orgplane_wire.problems import Conflict, Unauthenticated

RESET_ACCEPTED = {
    "status": "accepted",
    "detail": "If an account has this email, a link to reset its password is on its way.",
}


@post("/api/v1/auth/password-reset", status_code=HTTP_202_ACCEPTED, tags=["identity"])
async def password_reset_request(
    request: Request[Any, Any, Any], data: JSONBody[ResetRequestBody], runtime: RuntimeDep, db: DB
) -> dict[str, str]:
    """Mail a password-reset link; the same answer whether or not the email has an account."""
    await request_reset(
        db, runtime.settings, runtime.throttle, email=data.email, ip=client_ip(request)
    )
    return RESET_ACCEPTED


@post("/api/v1/auth/password-reset/confirm", status_code=HTTP_200_OK, tags=["identity"])
async def password_reset_confirm(
    request: Request[Any, Any, Any], data: JSONBody[ResetPasswordBody], runtime: RuntimeDep, db: DB
) -> dict[str, str]:
    """Spend a reset link's token: the new password is set and every session ends."""
    await complete_reset(
        db, runtime, token=data.token, new_password=data.new_password, ip=client_ip(request)
    )
    return {"status": "password_reset"}


@post("/api/v1/auth/verify-email", status_code=HTTP_200_OK, tags=["identity"])
async def verify_email(
    request: Request[Any, Any, Any], data: JSONBody[VerifyEmailBody], db: DB
) -> UserOut:
    """Spend a verification link's token: its address is the account's, verified."""
    return UserOut.of(await confirm_email(db, token=data.token, ip=client_ip(request)))


@post("/api/v1/me/email-verification", status_code=HTTP_202_ACCEPTED, tags=["identity"])
async def resend_verification(actor: ActorDep, runtime: RuntimeDep, db: DB) -> dict[str, str]:
    """Mail a new verification link to one's own, unverified email (rate limited)."""
    user = actor.user
    if user.email_verified_at is not None:
        raise Conflict("Your email is verified already.", code="already_verified")
    require_mail(runtime.settings)
    counts = mail_request_counts(runtime.settings, "verify", ip=actor.ip, email=user.email)
    await runtime.throttle.acquire(*counts)
    send_verification(db, runtime.settings, user, user.email)
    await db.commit()
    return {"status": "verification_sent"}


@post("/api/v1/me/email", status_code=HTTP_202_ACCEPTED, tags=["identity"])
async def change_email(
    data: JSONBody[ChangeEmailBody],
    actor: ActorDep,
    runtime: RuntimeDep,
    db: DB,
) -> dict[str, str]:
    """Ask to change one's email: a link goes to the new address, which becomes the account's
    (verified) when it is followed. The current password is required."""
    user = actor.user
    if not verify_password(data.password, user.password_hash):
        raise Unauthenticated("The password is not correct.", code="invalid_credentials")
    email = checked_email(data.email)
    if email == user.email:
        raise Conflict("That is your email already.", code="same_email", field="email")
    if await find_by_email(db, email) is not None:
        raise Conflict("A user with that email exists.", code="email_taken", field="email")
    require_mail(runtime.settings)
    send_verification(db, runtime.settings, user, email)
    record(
        db,
        action="user.email_change_requested",
        actor=user,
        target_type="user",
        target_id=user.id,
        ip=actor.ip,
    )
    await db.commit()
    return {"status": "verification_sent"}


@post(
    "/api/v1/users/{user_id:str}/password-reset", status_code=HTTP_202_ACCEPTED, tags=["identity"]
)
async def admin_password_reset(
    user_id: FromPath[str], actor: ActorDep, runtime: RuntimeDep, db: DB
) -> dict[str, str]:
    """Mail a user a password-reset link (platform admins; audited). The password stays until
    the user follows the link."""
    await admin_send_reset(db, runtime, actor, user_id)
    return {"status": "reset_link_sent"}


ROUTES = [
    password_reset_request,
    password_reset_confirm,
    verify_email,
    resend_verification,
    change_email,
    admin_password_reset,
]
