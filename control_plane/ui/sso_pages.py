"""Sign in with an identity provider: the login page's "Sign in with <provider>" buttons lead
here.

    GET /ui/auth/sso/{slug}/start?next=...   new state, nonce and PKCE pair; 303 to the provider
    GET /ui/auth/sso/{slug}/callback         the provider's redirect back: the session is made

The session is made exactly as a password sign-in makes it (``login_tokens`` and the same
cookies). A user with TOTP on whose provider vouched for no second factor is asked for a code
on the same page as after a password (the pending sign-in of ``ui/pending_login.py``). A refused
sign-in shows the login page again with the reason (401).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.deps import DB, RuntimeDep
from control_plane.sso.admin import list_providers
from control_plane.sso.attempt_cookie import (
    ATTEMPT_COOKIE,
    PendingSso,
    attempt_cookie,
    cleared_attempt,
    new_attempt,
    read_attempt,
)
from control_plane.sso.base import SsoError
from control_plane.sso.signin import authorization_url, enabled_provider, finish_sign_in
from control_plane.tokens.access import login_tokens
from control_plane.tokens.mfa_gate import FEDERATED
from control_plane.ui.forms import FormErrors, page, safe_next
from control_plane.ui.passkey_login import second_step_page
from control_plane.ui.pending_login import Pending, pending_cookie
from control_plane.ui.session import cookie_secure, session_cookies
from orgplane_wire.problems import ProblemError

NextPath = Annotated[str | None, QueryParameter(name="next", max_length=2048)]
EXPIRED = "Your sign-in was not finished in time, or was started in another browser; start again."


async def sign_in_buttons(db: AsyncSession) -> list[dict[str, str]]:
    """The enabled providers, for the login page's buttons."""
    return [
        {"slug": row.slug, "name": row.display_name}
        for row in await list_providers(db, enabled_only=True)
    ]


async def _login_again(db: AsyncSession, message: str, status: int, *, secure: bool) -> Any:
    """The login page again with ``message``; whatever the refused sign-in wrote is undone."""
    await db.rollback()
    errors = FormErrors()
    errors.general = message
    buttons = await sign_in_buttons(db)
    answer = page(
        "login.html", status, next_path="/ui/", errors=errors, email="", providers=buttons
    )
    answer.cookies.append(cleared_attempt(secure=secure))
    return answer


@get("/auth/sso/{slug:str}/start")
async def sso_start(
    request: Request[Any, Any, Any],
    slug: FromPath[str],
    runtime: RuntimeDep,
    db: DB,
    next_path: NextPath,
) -> Any:
    """Send the browser to the provider, remembering this attempt in an encrypted cookie."""
    secure = cookie_secure(runtime, request.url.scheme)
    try:
        row = await enabled_provider(db, slug)
        redirect_uri = f"{runtime.settings.server.base_url}/ui/auth/sso/{row.slug}/callback"
        attempt = new_attempt(redirect_uri)
        url = await authorization_url(runtime, db, row, attempt)
    except ProblemError as exc:
        return await _login_again(db, exc.detail, exc.status, secure=secure)
    pending = PendingSso(row.slug, attempt, safe_next(next_path))
    cookie = attempt_cookie(runtime.settings, pending, secure=secure)
    return Redirect(url, status_code=303, cookies=[cookie])


@get("/auth/sso/{slug:str}/callback")
async def sso_callback(
    request: Request[Any, Any, Any], slug: FromPath[str], runtime: RuntimeDep, db: DB
) -> Any:
    """Finish the sign-in the provider answered, set the session cookies and go on."""
    secure = cookie_secure(runtime, request.url.scheme)
    pending = read_attempt(runtime.settings, request.cookies.get(ATTEMPT_COOKIE))
    if pending is None or pending.slug != slug:
        return await _login_again(db, EXPIRED, 401, secure=secure)
    params = {key: str(value) for key, value in request.query_params.items()}
    try:
        row = await enabled_provider(db, slug)
        sign_in = await finish_sign_in(request, runtime, db, row, pending.attempt, params)
    except (SsoError, ProblemError) as exc:
        return await _login_again(db, exc.detail, exc.status, secure=secure)
    if sign_in.needs_otp:
        user = sign_in.user
        # The provider's sign-in was the first factor; the code or a passkey comes second.
        second = Pending(user.id, user.session_version, pending.next_path, first=FEDERATED)
        answer = await second_step_page(runtime, db, user, second)
        answer.cookies.append(pending_cookie(runtime.settings, second, secure=secure))
        answer.cookies.append(cleared_attempt(secure=secure))
        return answer
    pair = await login_tokens(runtime, db, sign_in.user, amr=sign_in.amr)
    cookies = [*session_cookies(runtime, pair, secure=secure), cleared_attempt(secure=secure)]
    return Redirect(pending.next_path, status_code=303, cookies=cookies)


ROUTES = [sso_start, sso_callback]
