"""The second step of a UI sign-in with a passkey instead of a one-time code.

When the password was right and the user has passkeys, the code page also carries options for
``navigator.credentials.get()`` (a challenge bound to the pending sign-in's ``login_id``, see
:mod:`control_plane.ui.pending_login`), and ``static/passkeys.js`` offers "Use a passkey". The
browser's answer is posted to ``/ui/login/passkey`` in a form, checked by
:func:`control_plane.identity.login.authenticate_passkey_step` (the login limits, the audit)
and, when it proves the user, signs the browser in with ``amr`` ``pwd`` and ``hwk``/``swk``.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, post
from litestar.response import Redirect, Template
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import User
from control_plane.deps import DB, RuntimeDep
from control_plane.identity.login import authenticate_passkey_step
from control_plane.identity.passkeys import login_options
from control_plane.runtime import Runtime
from control_plane.tokens.access import login_tokens
from control_plane.ui.forms import FormErrors, form_data, page
from control_plane.ui.pending_login import PENDING_COOKIE, Pending, cleared_pending, read_pending
from control_plane.ui.session import cookie_secure, session_cookies
from orgplane_wire.problems import TooManyRequests, Unauthenticated

CREDENTIAL_LIMIT = 20_000
EXPIRED = "Your sign-in was not finished in time; start again."


async def passkey_choice(runtime: Runtime, db: AsyncSession, user: User, pending: Pending) -> str:
    """The options (JSON) for signing the pending sign-in in with a passkey, committed; ""
    when the user has none."""
    options = await login_options(db, runtime.settings, user, pending.login_id)
    await db.commit()
    return json.dumps(options) if options is not None else ""


async def second_step_page(
    runtime: Runtime,
    db: AsyncSession,
    user: User,
    pending: Pending,
    status: int = 200,
    errors: FormErrors | None = None,
) -> Template:
    """The code page of a pending sign-in, offering the user's passkeys when there are any."""
    options = await passkey_choice(runtime, db, user, pending)
    return page("login_otp.html", status, errors=errors or FormErrors(), passkey_options=options)


@post("/login/passkey")
async def login_passkey_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """The second step with a passkey: check the answer for the pending sign-in."""
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
    raw = data.get("credential", "")
    try:
        credential = json.loads(raw) if 0 < len(raw) <= CREDENTIAL_LIMIT else None
    except ValueError:
        credential = None
    try:
        sign_in = await authenticate_passkey_step(
            request, runtime, db, user, pending.login_id, credential
        )
    except (Unauthenticated, TooManyRequests) as exc:
        errors.general = exc.detail
        status = 429 if isinstance(exc, TooManyRequests) else 401
        return await second_step_page(runtime, db, user, pending, status, errors)
    pair = await login_tokens(runtime, db, sign_in.user, amr=pending.amr(sign_in.amr))
    cookies = [*session_cookies(runtime, pair, secure=secure), cleared_pending(secure=secure)]
    return Redirect(pending.next_path, status_code=303, cookies=cookies)


ROUTES = [login_passkey_submit]
