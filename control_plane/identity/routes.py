"""Identity API: login, logout, sign-up, me, password, and user administration."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.auth import SESSION_COOKIE, require_platform_admin
from control_plane.client_ip import client_ip
from control_plane.db.models import User
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.identity.account import change_own_password
from control_plane.identity.admin import admin_create, admin_update, users_page
from control_plane.identity.login import authenticate_password
from control_plane.identity.mfa_routes import ROUTES as MFA_ROUTES
from control_plane.identity.passkey_routes import ROUTES as PASSKEY_ROUTES
from control_plane.identity.personal_token_routes import ROUTES as PERSONAL_TOKEN_ROUTES
from control_plane.identity.recovery import send_verification
from control_plane.mail.outbox import require_mail
from control_plane.members.invites import usable_invite
from control_plane.signing.revocation import deny_access_token
from control_plane.tokens.access import login_tokens, revoke_family_of
from control_plane.tokens.org_revocation import revoke_user_everywhere
from control_plane.users.schemas import (
    ChangePasswordBody,
    CreateUserBody,
    LoginBody,
    LogoutBody,
    SignupBody,
    TokenAnswer,
    UpdateUserBody,
    UserOut,
)
from control_plane.users.service import create_user
from orgplane_wire.cursors import Page
from orgplane_wire.problems import Forbidden, NotFound
from orgplane_wire.secret_box import hash_secret


@post("/api/v1/auth/login", status_code=HTTP_200_OK, tags=["identity"])
async def login(
    request: Request[Any, Any, Any], data: JSONBody[LoginBody], runtime: RuntimeDep, db: DB
) -> TokenAnswer:
    """Exchange email and password (and a one-time code, with MFA on) for an access token and
    a refresh token."""
    sign_in = await authenticate_password(request, runtime, db, data.email, data.password, data.otp)
    pair = await login_tokens(runtime, db, sign_in.user, amr=sign_in.amr)
    return TokenAnswer(pair.access_token, "Bearer", pair.expires_in, pair.refresh_token)


@post("/api/v1/auth/signup", status_code=HTTP_201_CREATED, tags=["identity"])
async def signup(
    request: Request[Any, Any, Any], data: JSONBody[SignupBody], runtime: RuntimeDep, db: DB
) -> UserOut:
    """Create an account, when self sign-up is enabled. Its email is unverified until the
    link mailed to it is followed; until then the account cannot join an org. An
    ``invite_token`` is checked (nothing is created if it is not usable for this email), and
    is accepted with ``POST /api/v1/invites/accept`` once the email is verified."""
    if not runtime.settings.security.allow_signup:
        raise Forbidden("Sign-up is disabled on this platform.", code="signup_disabled")
    require_mail(runtime.settings)
    user = await create_user(
        db, email=data.email, password=data.password, name=data.name, verified=False
    )
    record(
        db,
        action="user.signup",
        actor=user,
        target_type="user",
        target_id=user.id,
        ip=client_ip(request),
    )
    if data.invite_token is not None:
        await usable_invite(db, user, data.invite_token)
    send_verification(db, runtime.settings, user, user.email)
    await db.commit()
    return UserOut.of(user)


@post("/api/v1/auth/logout", status_code=HTTP_200_OK, tags=["identity"])
async def logout(
    data: JSONBody[LogoutBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> Response[dict[str, str]]:
    """Revoke the presented refresh token's family and the access token the request carries,
    and clear the session cookie."""
    if data.refresh_token:
        await revoke_family_of(db, hash_secret(data.refresh_token))
    await deny_access_token(runtime.revoked, actor.principal.claims)
    record(db, action="auth.logout", actor=actor.user, ip=actor.ip)
    await db.commit()
    await revoke_user_everywhere(runtime, db, actor.user)
    response = Response({"status": "logged_out"})
    response.delete_cookie(SESSION_COOKIE)
    return response


@get("/api/v1/me", tags=["identity"])
async def me(principal: Caller) -> UserOut:
    """The signed-in user."""
    return UserOut.of(principal.user)


@post("/api/v1/me/password", status_code=HTTP_200_OK, tags=["identity"])
async def change_password(
    data: JSONBody[ChangePasswordBody], actor: ActorDep, db: DB, runtime: RuntimeDep
) -> dict[str, str]:
    """Change one's own password; every refresh token of the user is revoked."""
    await change_own_password(db, runtime, actor, data)
    return {"status": "password_changed"}


@get("/api/v1/users", tags=["identity"])
async def list_users(
    principal: Caller,
    db: DB,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
) -> Page[UserOut]:
    """Every user (platform admins only), by email, keyset-paginated."""
    return await users_page(db, principal, limit=limit, cursor=cursor, q=q)


@post("/api/v1/users", status_code=HTTP_201_CREATED, tags=["identity"])
async def admin_create_user(data: JSONBody[CreateUserBody], actor: ActorDep, db: DB) -> UserOut:
    """Create a user (platform admins only)."""
    return UserOut.of(await admin_create(db, actor, data))


@get("/api/v1/users/{user_id:str}", tags=["identity"])
async def get_user(user_id: FromPath[str], principal: Caller, db: DB) -> UserOut:
    """One user: oneself, or anyone for platform admins."""
    if user_id != principal.user.id:
        require_platform_admin(principal)
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return UserOut.of(user)


@patch("/api/v1/users/{user_id:str}", tags=["identity"])
async def update_user(
    user_id: FromPath[str],
    data: JSONBody[UpdateUserBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> UserOut:
    """Rename, disable or enable a user, or change staff rights (platform admins only)."""
    return UserOut.of(await admin_update(db, runtime, actor, user_id, data))


ROUTES = [
    login,
    signup,
    logout,
    me,
    change_password,
    list_users,
    admin_create_user,
    get_user,
    update_user,
    *PERSONAL_TOKEN_ROUTES,
    *MFA_ROUTES,
    *PASSKEY_ROUTES,
]
