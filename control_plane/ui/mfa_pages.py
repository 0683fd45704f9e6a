"""The two-factor authentication page: turn TOTP on (password, then the secret and a code),
see the recovery codes once, make new ones, or turn it off (password and a code).

Every step calls :mod:`control_plane.identity.mfa_account`, as the API does, so the
re-authentication, the login rate limits and the audit records are the API's. Answers that
show a secret or recovery codes are ``Cache-Control: no-store``; the secret is never put in a
form or a URL (confirming needs only the code: the unconfirmed secret is on the user's row).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Template

from control_plane.deps import DB, RuntimeDep
from control_plane.identity.mfa import mfa_enabled
from control_plane.identity.mfa_account import (
    confirm_totp,
    regenerate_recovery_codes,
    start_totp,
    turn_off_totp,
)
from control_plane.identity.passkeys import user_passkeys
from control_plane.ui.forms import FormErrors, back_to, body_from, form_data, notice_of, page
from control_plane.ui.forms import start_over as reload_viewer
from control_plane.ui.session import Viewer
from control_plane.users.schemas import ConfirmBody, SecondFactorBody
from orgplane_wire.problems import ProblemError

PAGE = "/ui/account/mfa"
Done = Annotated[str | None, QueryParameter(max_length=40)]


def mfa_page_of(viewer: Viewer, status: int = 200, **context: Any) -> Template:
    values: dict[str, Any] = {
        "me": viewer.user,
        "enabled": mfa_enabled(viewer.user),
        "errors": FormErrors(),
        "notice": "",
        "secret": "",
        "otpauth_uri": "",
        "recovery_codes": [],
        "confirming": False,
        #: The form the errors belong to (the page has several with the same fields).
        "failed": "",
        "blank": FormErrors(),
        #: The user's passkeys, listed when MFA is on (``ui/passkey_pages.py`` adds and
        #: removes them); ``passkey_options``: creation options of a passkey being added.
        "passkeys": [],
        "passkey_options": "",
        "passkey_name": "",
        **context,
    }
    answer = page("mfa.html", status, **values)
    if values["secret"] or values["recovery_codes"] or values["passkey_options"]:
        answer.headers["Cache-Control"] = "no-store"
    return answer


async def refused_page(db: DB, viewer: Viewer, exc: ProblemError, **context: Any) -> Template:
    """The page again with the problem beside its field (the change rolled back)."""
    await reload_viewer(db, viewer)
    context.setdefault("passkeys", await user_passkeys(db, viewer.user.id))
    errors = FormErrors()
    if exc.code == "invalid_credentials":
        errors.fields["password"] = exc.detail
    elif exc.code == "invalid_otp":
        errors.fields["code"] = exc.detail
    else:
        errors.general = exc.detail
    return mfa_page_of(viewer, exc.status, errors=errors, **context)


@get("/account/mfa")
async def mfa_page(viewer: Viewer, db: DB, done: Done = None) -> Template:
    """Whether TOTP is on, the passkeys, and the forms to change them."""
    passkeys = await user_passkeys(db, viewer.user.id)
    return mfa_page_of(viewer, notice=notice_of(done), passkeys=passkeys)


@post("/account/mfa/start")
async def mfa_start(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Template:
    """Check the password and show a new secret (once) with the form for its first code."""
    data = await form_data(request)
    errors = FormErrors()
    if not data.get("password"):
        errors.fields["password"] = "This field is required."
        return mfa_page_of(viewer, 400, errors=errors)
    try:
        secret, uri = await start_totp(request, runtime, db, viewer.user, data["password"])
    except ProblemError as exc:
        return await refused_page(db, viewer, exc)
    return mfa_page_of(viewer, secret=secret, otpauth_uri=uri)


@post("/account/mfa/confirm")
async def mfa_confirm(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Template:
    """Turn TOTP on with a code of the new secret; show the recovery codes once."""
    data = await form_data(request)
    errors = FormErrors()
    body = body_from(ConfirmBody, {"code": data.get("code", "")}, errors)
    if body is None:
        return mfa_page_of(viewer, 400, errors=errors, confirming=True)
    try:
        codes = await confirm_totp(request, runtime, db, viewer.user, body.code)
    except ProblemError as exc:
        return await refused_page(db, viewer, exc, confirming=True)
    return mfa_page_of(viewer, recovery_codes=codes)


async def _with_factor(request: Request[Any, Any, Any]) -> tuple[SecondFactorBody | None, Any]:
    data = await form_data(request)
    errors = FormErrors()
    values = {"password": data.get("password", ""), "code": data.get("code", "")}
    return body_from(SecondFactorBody, values, errors), errors


@post("/account/mfa/disable")
async def mfa_disable(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Response[Any]:
    """Turn TOTP off with the password and a current code (or a recovery code)."""
    body, errors = await _with_factor(request)
    if body is None:
        return mfa_page_of(viewer, 400, errors=errors, failed="disable")
    try:
        await turn_off_totp(request, runtime, db, viewer.user, body.password, body.code)
    except ProblemError as exc:
        return await refused_page(db, viewer, exc, failed="disable")
    return back_to(PAGE, "mfa_disabled")


@post("/account/mfa/recovery-codes")
async def mfa_new_codes(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Template:
    """New recovery codes (the old ones stop working), shown once."""
    body, errors = await _with_factor(request)
    if body is None:
        return mfa_page_of(viewer, 400, errors=errors, failed="codes")
    user = viewer.user
    try:
        codes = await regenerate_recovery_codes(
            request, runtime, db, user, body.password, body.code
        )
    except ProblemError as exc:
        return await refused_page(db, viewer, exc, failed="codes")
    return mfa_page_of(viewer, recovery_codes=codes)


ROUTES = [mfa_page, mfa_start, mfa_confirm, mfa_disable, mfa_new_codes]
