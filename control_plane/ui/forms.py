"""HTML forms in, API request bodies out; API problems back as messages beside the fields.

The UI validates nothing itself: a form becomes the same ``msgspec`` body the JSON API takes
(with the same constraints), and the service functions raise the same problems. This module
only translates between the two worlds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec
from litestar import Request, Response
from litestar.response import Redirect, Template
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import Principal
from orgplane_wire.problems import ProblemError

T = TypeVar("T")

_PATH: Final = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")
#: Notices a redirect may name with ``?done=``; the URL carries a key, never free text.
NOTICES: Final = {
    "created": "Created.",
    "saved": "Saved.",
    "password_changed": "Your password was changed.",
    "mfa_disabled": "Two-factor authentication is off; your password alone signs you in.",
    "passkey_added": "Passkey added: you can use it instead of a code when you sign in.",
    "passkey_removed": "Passkey removed.",
    "password_reset": "Your password was reset and every session signed out; sign in with it.",
    "action_requested": "Requested; the instance timeline shows progress.",
    "deletion_requested": "Deletion scheduled. You can cancel it until the countdown ends.",
    "deletion_cancelled": "Deletion cancelled.",
    "invite_accepted": "Invite accepted; the org is in your list.",
    "invite_revoked": "Invite revoked.",
    "member_updated": "Member updated.",
    "member_removed": "Member removed.",
    "request_decided": "Access request decided.",
    "access_approval_changed": "Access approval setting saved.",
    "key_rotated": "A new signing key was published; it signs after one JWKS cache lifetime.",
    "user_created": "User created.",
    "user_updated": "User updated.",
    "reset_link_sent": "A password-reset link is on its way to the user.",
    "mfa_reset": "Two-factor authentication is off for the user, and their sessions ended.",
}


@dataclass
class FormErrors:
    """Messages per field, plus one for the form as a whole."""

    fields: dict[str, str] = field(default_factory=dict)
    general: str = ""

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def add_problem(self, exc: ProblemError) -> None:
        """Put a problem's detail beside the field it names, or at the top."""
        name = str(exc.extra.get("field", "")).split(".")[0]
        if name:
            self.fields[name] = exc.detail
        else:
            self.general = exc.detail


async def form_data(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The submitted form's fields, trimmed; the CSRF token is not part of the data."""
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if k != "_csrf_token"}


def optional(data: dict[str, str], *names: str) -> dict[str, Any]:
    """The named fields, with empty ones left out (so the API's defaults apply)."""
    return {name: data[name] for name in names if data.get(name)}


def body_from(kind: type[T], values: dict[str, Any], errors: FormErrors) -> T | None:
    """``values`` as the API body ``kind``, validated by its constraints; None on errors."""
    try:
        return msgspec.convert(values, kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        found = _PATH.search(message)
        if found:
            errors.fields[found.group(1)] = message.split(" - at ")[0].replace("`", "")
        elif "missing required field" in message:
            name = message.split("`")[1] if "`" in message else ""
            errors.fields[name] = "This field is required."
        else:
            errors.general = message
        return None


def page(name: str, status: int = 200, **context: Any) -> Template:
    """A rendered page with ``status``."""
    return Template(template_name=name, context=context, status_code=status, media_type="text/html")


def back_to(path: str, done: str | None = None) -> Response[Any]:
    """303 to ``path`` (a UI path we built), optionally naming a notice."""
    location = f"{path}?done={done}" if done else path
    return Redirect(location, status_code=303)


def notice_of(done: str | None) -> str:
    """The message of a ``?done=`` key; unknown keys show nothing."""
    return NOTICES.get(done or "", "")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only paths inside the UI, never another site."""
    if (
        target
        and target.startswith("/ui/")
        and not target.startswith("/ui//")
        and "\\" not in target
    ):
        return target
    return "/ui/"


async def start_over(db: AsyncSession, viewer: Principal) -> None:
    """Roll back a refused change and reload the viewer, whose row the rollback expired
    (templates read it without awaiting)."""
    await db.rollback()
    await db.refresh(viewer.user)
