"""Sign in, sign out and change password: the UI's front door.

The rules (rate limits, the one answer for any bad login, revoking tokens on a password
change) are the identity API's; these handlers call the same functions.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from control_plane.actor import Actor
from control_plane.audit_trail import record
from control_plane.auth import SESSION_COOKIE, verify_access_token
from control_plane.client_ip import client_ip
from control_plane.db.models import User
from control_plane.deps import DB, RuntimeDep
from control_plane.identity.account import change_own_password
from control_plane.identity.login import authenticate_password, authenticate_second_step
from control_plane.signing.revocation import deny_access_token
from control_plane.tokens.access import login_tokens, revoke_family_of
from control_plane.tokens.mfa_gate import subject_amr
from control_plane.tokens.org_revocation import revoke_user_everywhere
from control_plane.ui.csrf import check_bound
from control_plane.ui.forms import (
    FormErrors,
    body_from,
    form_data,
    notice_of,
    page,
    safe_next,
    start_over,
)
from control_plane.ui.passkey_login import second_step_page
from control_plane.ui.pending_login import (
    PENDING_COOKIE,
    Pending,
    cleared_pending,
    pending_cookie,
    read_pending,
)
from control_plane.ui.session import (
    REFRESH_COOKIE,
    Viewer,
    cleared_cookies,
    cookie_secure,
    session_cookies,
)
from control_plane.ui.sso_pages import sign_in_buttons
from control_plane.users.schemas import ChangePasswordBody
from control_plane.users.service import find_by_email, normalize_email
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.problems import ProblemError, TooManyRequests, Unauthenticated
from orgplane_wire.secret_box import hash_secret

EXPIRED = "Your sign-in was not finished in time; start again."
NextPath = Annotated[str | None, QueryParameter(name="next", max_length=2048)]
Done = Annotated[str | None, QueryParameter(max_length=40)]


@get("/login")
async def login_page(db: DB, next_path: NextPath = None, done: Done = None) -> Template:
    """The sign-in form, with a "Sign in with <provider>" button per identity provider."""
    return page(
        "login.html",
        next_path=safe_next(next_path),
        errors=FormErrors(),
        email="",
        notice=notice_of(done),
        providers=await sign_in_buttons(db),
    )


@post("/login")
async def login_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """Check the credentials, set the session cookies and go where the user wanted; with MFA
    on, ask for the one-time code first (the password is not carried to that step)."""
    data = await form_data(request)
    target = safe_next(data.get("next"))
    errors = FormErrors()
    secure = cookie_secure(runtime, request.url.scheme)
    try:
        sign_in = await authenticate_password(
            request, runtime, db, data.get("email", ""), data.get("password", "")
        )
    except (Unauthenticated, TooManyRequests) as exc:
        # mfa_required comes only with the right password: ask for the code on a second page.
        email = normalize_email(data.get("email", ""))
        user = await find_by_email(db, email) if exc.code == "mfa_required" else None
        if user is not None:
            pending = Pending(user.id, user.session_version, target)
            answer = await second_step_page(runtime, db, user, pending)
            answer.cookies.append(pending_cookie(runtime.settings, pending, secure=secure))
            return answer
        errors.general = exc.detail
        status = 429 if isinstance(exc, TooManyRequests) else 401
        return page(
            "login.html",
            status,
            next_path=target,
            errors=errors,
            email=data.get("email", ""),
            providers=await sign_in_buttons(db),
        )
    pair = await login_tokens(runtime, db, sign_in.user, amr=sign_in.amr)
    return Redirect(target, status_code=303, cookies=session_cookies(runtime, pair, secure=secure))


@post("/login/otp")
async def login_otp_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """The second step: check the one-time code of the pending sign-in."""
    data = await form_data(request)
    secure = cookie_secure(runtime, request.url.scheme)
    pending = read_pending(runtime.settings, request.cookies.get(PENDING_COOKIE))
    user = await db.get(User, pending.user_id) if pending is not None else None
    errors = FormErrors()
    if pending is None or user is None or user.session_version != pending.session_version:
        errors.general = EXPIRED
        answer = page("login.html", 401, next_path="/ui/", errors=errors, email="")
        answer.cookies.append(cleared_pending(secure=secure))
        return answer
    try:
        sign_in = await authenticate_second_step(request, runtime, db, user, data.get("otp", ""))
    except (Unauthenticated, TooManyRequests) as exc:
        errors.fields["otp"] = exc.detail
        status = 429 if isinstance(exc, TooManyRequests) else 401
        return await second_step_page(runtime, db, user, pending, status, errors)
    pair = await login_tokens(runtime, db, sign_in.user, amr=pending.amr(sign_in.amr))
    cookies = [*session_cookies(runtime, pair, secure=secure), cleared_pending(secure=secure)]
    return Redirect(pending.next_path, status_code=303, cookies=cookies)


@post("/logout")
async def logout_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """Revoke the session's refresh-token family, record it and forget the cookies."""
    token = request.cookies.get(SESSION_COOKIE)
    claims: dict[str, Any] = {}
    if token:
        try:
            claims = await verify_access_token(token, runtime=runtime, db=db)
        except InvalidToken:
            claims = {}
        check_bound(request, runtime.settings, claims)
    refresh = request.cookies.get(REFRESH_COOKIE)
    family = await revoke_family_of(db, hash_secret(refresh)) if refresh else None
    actor_id = family[1] if family else None
    if claims:  # the cookie's access token ends now, not at its expiry
        await deny_access_token(runtime.revoked, claims)
        actor_id = actor_id or claims["sub"]
    user = await db.get(User, actor_id) if actor_id is not None else None
    if user is not None:
        record(db, action="auth.logout", actor=user, ip=client_ip(request))
    await db.commit()
    if user is not None:
        await revoke_user_everywhere(runtime, db, user)
    secure = cookie_secure(runtime, request.url.scheme)
    return Redirect("/ui/login", status_code=303, cookies=cleared_cookies(secure=secure))


@get("/account/password")
async def password_page(viewer: Viewer, done: Done = None) -> Template:
    """The change-password form."""
    return page("password.html", me=viewer.user, errors=FormErrors(), notice=notice_of(done))


@post("/account/password")
async def password_submit(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Any:
    """Change the password; other sessions end, this one continues with fresh tokens."""
    data = await form_data(request)
    errors = FormErrors()
    body = body_from(
        ChangePasswordBody,
        {
            "current_password": data.get("current_password", ""),
            "new_password": data.get("new_password", ""),
        },
        errors,
    )
    if body is not None:
        try:
            await change_own_password(db, runtime, Actor.of(request, viewer), body)
        except ProblemError as exc:
            await start_over(db, viewer)
            if exc.code == "invalid_credentials":
                errors.fields["current_password"] = exc.detail
            elif exc.code == "weak_password":
                errors.fields["new_password"] = exc.detail
            else:
                errors.add_problem(exc)
    if errors:
        return page("password.html", 400, me=viewer.user, errors=errors, notice="")
    amr = tuple(subject_amr(viewer.claims, None))  # the new session is the same sign-in
    pair = await login_tokens(runtime, db, viewer.user, amr=amr)
    secure = cookie_secure(runtime, request.url.scheme)
    response: Response[Any] = Redirect(
        "/ui/account/password?done=password_changed", status_code=303
    )
    response.cookies.extend(session_cookies(runtime, pair, secure=secure))
    return response


ROUTES = [login_page, login_submit, login_otp_submit, logout_submit, password_page, password_submit]
