"""Forgot password, set a new one, confirm an email: pages for people who are not signed in.

The forms carry the same CSRF token as every other form; the rules are
``control_plane.identity.recovery``'s, so these pages only translate problems into messages.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Template

from control_plane.client_ip import client_ip
from control_plane.deps import DB, RuntimeDep
from control_plane.identity.recovery import complete_reset, confirm_email, request_reset
from control_plane.ui.forms import FormErrors, back_to, form_data, page
from orgplane_wire.problems import ProblemError


@get("/password/forgot", sync_to_thread=False)
def forgot_page() -> Template:
    """Ask for a reset link."""
    return page("password_forgot.html", errors=FormErrors(), email="", sent=False)


@post("/password/forgot")
async def forgot_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """Mail a reset link if the email has an account; the same page either way."""
    data = await form_data(request)
    email = data.get("email", "")[:320]
    errors = FormErrors()
    if not email:
        errors.fields["email"] = "This field is required."
        return page("password_forgot.html", 400, errors=errors, email=email, sent=False)
    try:
        await request_reset(
            db, runtime.settings, runtime.throttle, email=email, ip=client_ip(request)
        )
    except ProblemError as exc:
        errors.general = exc.detail
        return page("password_forgot.html", exc.status, errors=errors, email=email, sent=False)
    return page("password_forgot.html", errors=errors, email="", sent=True)


@get("/password/reset", sync_to_thread=False)
def reset_page() -> Template:
    """The new-password form; the script fills the token in from the link's fragment."""
    return page("password_reset.html", errors=FormErrors())


@post("/password/reset")
async def reset_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """Set the new password; every session of the account ends, and it signs in again."""
    data = await form_data(request)
    errors = FormErrors()
    try:
        await complete_reset(
            db,
            runtime,
            token=data.get("token", "")[:200],
            new_password=data.get("new_password", "")[:1024],
            ip=client_ip(request),
        )
    except ProblemError as exc:
        if exc.code == "weak_password":
            errors.fields["new_password"] = exc.detail
        else:
            errors.fields["token"] = exc.detail
        return page("password_reset.html", exc.status, errors=errors)
    return back_to("/ui/login", "password_reset")


@get("/verify-email", sync_to_thread=False)
def verify_page() -> Template:
    """The confirm form (a POST: a mail scanner opening the link spends nothing)."""
    return page("verify_email.html", errors=FormErrors(), verified="")


@post("/verify-email")
async def verify_submit(request: Request[Any, Any, Any], db: DB) -> Any:
    """Confirm the email the link was sent to."""
    data = await form_data(request)
    errors = FormErrors()
    try:
        user = await confirm_email(db, token=data.get("token", "")[:200], ip=client_ip(request))
    except ProblemError as exc:
        errors.fields["token"] = exc.detail
        return page("verify_email.html", exc.status, errors=errors, verified="")
    return page("verify_email.html", errors=errors, verified=user.email)


ROUTES = [forgot_page, forgot_submit, reset_page, reset_submit, verify_page, verify_submit]
