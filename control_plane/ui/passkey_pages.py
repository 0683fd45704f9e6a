"""Passkeys on the two-factor authentication page: add one (a name and the password, then the
browser creates the credential), remove one (the password and a current code).

Adding needs JavaScript (``static/passkeys.js`` calls ``navigator.credentials.create()`` with
the options this page puts in a ``data-`` attribute, and posts the answer back in the form):
without it the section stays hidden and the TOTP forms work as before. Every step calls
:mod:`control_plane.identity.passkey_account`, as the API does.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, post
from litestar.response import Template

from control_plane.deps import DB, RuntimeDep
from control_plane.identity.passkey_account import (
    finish_registration,
    remove_passkey,
    session_binding,
    start_registration,
)
from control_plane.identity.passkeys import user_passkeys
from control_plane.ui.forms import FormErrors, back_to, form_data
from control_plane.ui.mfa_pages import PAGE, mfa_page_of, refused_page
from control_plane.ui.session import Viewer
from orgplane_wire.problems import ProblemError

NAME_LIMIT = 100
CREDENTIAL_LIMIT = 20_000


async def _form_errors(db: DB, viewer: Viewer, errors: FormErrors, failed: str) -> Template:
    passkeys = await user_passkeys(db, viewer.user.id)
    return mfa_page_of(viewer, 400, errors=errors, failed=failed, passkeys=passkeys)


@post("/account/mfa/passkeys/start")
async def passkey_start(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Template:
    """Check the password; the page again with the options to create the passkey."""
    data = await form_data(request)
    errors = FormErrors()
    name, password = data.get("name", ""), data.get("password", "")
    if not name or len(name) > NAME_LIMIT:
        errors.fields["name"] = f"Name the passkey (at most {NAME_LIMIT} characters)."
    if not password:
        errors.fields["password"] = "This field is required."
    if errors:
        return await _form_errors(db, viewer, errors, "passkey_add")
    binding = session_binding(viewer.claims)
    try:
        options = await start_registration(request, runtime, db, viewer.user, password, binding)
    except ProblemError as exc:
        return await refused_page(db, viewer, exc, failed="passkey_add")
    return mfa_page_of(
        viewer,
        passkeys=await user_passkeys(db, viewer.user.id),
        passkey_options=json.dumps(options),
        passkey_name=name,
    )


@post("/account/mfa/passkeys/add")
async def passkey_add(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Response[Any]:
    """Keep the credential the browser created for this session's challenge."""
    data = await form_data(request)
    name, raw = data.get("name", ""), data.get("credential", "")
    try:
        credential = json.loads(raw) if 0 < len(raw) <= CREDENTIAL_LIMIT else None
    except ValueError:
        credential = None
    if not isinstance(credential, dict) or not name or len(name) > NAME_LIMIT:
        errors = FormErrors(general="The browser's answer was not a passkey: start again.")
        return await _form_errors(db, viewer, errors, "passkey_add")
    user, binding = viewer.user, session_binding(viewer.claims)
    try:
        await finish_registration(request, runtime, db, user, binding, credential, name)
    except ProblemError as exc:
        return await refused_page(db, viewer, exc, failed="passkey_add")
    return back_to(PAGE, "passkey_added")


@post("/account/mfa/passkeys/remove")
async def passkey_remove(
    request: Request[Any, Any, Any], viewer: Viewer, runtime: RuntimeDep, db: DB
) -> Response[Any]:
    """Remove the chosen passkey with the password and a current code (or a recovery code)."""
    data = await form_data(request)
    errors = FormErrors()
    for field in ("passkey", "password", "code"):
        if not data.get(field):
            errors.fields[field] = "This field is required."
    if errors:
        return await _form_errors(db, viewer, errors, "passkey_remove")
    try:
        await remove_passkey(
            request, runtime, db, viewer.user, data["passkey"], data["password"], data["code"]
        )
    except ProblemError as exc:
        return await refused_page(db, viewer, exc, failed="passkey_remove")
    return back_to(PAGE, "passkey_removed")


ROUTES = [passkey_start, passkey_add, passkey_remove]
