"""Platform administration: users, the audit log and the signing keys.

The pages call the same services as the identity, audit and key APIs, so the access rules
(platform admins only; org admins see their orgs' audit events) and audit records are the API's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Template
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.audit.query import events_page
from control_plane.auth import Principal, require_platform_admin
from control_plane.db.types import utc
from control_plane.deps import DB, RuntimeDep
from control_plane.identity import admin
from control_plane.identity.mfa_account import admin_reset_mfa
from control_plane.orgs.access import find_live_org
from control_plane.tokens.key_admin import keys_of, start_rotation
from control_plane.ui.forms import (
    FormErrors,
    back_to,
    body_from,
    form_data,
    notice_of,
    page,
    start_over,
)
from control_plane.ui.session import Viewer
from control_plane.users.schemas import CreateUserBody, MfaResetBody, UpdateUserBody
from orgplane_wire.problems import BadRequest, ProblemError

Text = Annotated[str | None, QueryParameter(max_length=200)]


async def users_context(
    db: AsyncSession,
    viewer: Principal,
    *,
    q: str | None,
    cursor: str | None,
    mail_on: bool = False,
) -> dict[str, Any]:
    """One page of users (``mail_on``: offer to send reset links)."""
    listed = await admin.users_page(db, viewer, limit=50, cursor=cursor, q=q)
    return {
        "me": viewer.user,
        "users": listed.items,
        "next_cursor": listed.next_cursor,
        "q": q or "",
        "errors": FormErrors(),
        "values": {},
        "mail_on": mail_on,
    }


@get("/admin/users")
async def users_page(
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
    q: Text = None,
    cursor: Text = None,
    done: Text = None,
) -> Any:
    """Every user (platform admins), with a create form."""
    require_platform_admin(viewer)
    mail_on = runtime.settings.mail.enabled
    context = await users_context(db, viewer, q=q, cursor=cursor, mail_on=mail_on)
    return page("users.html", notice=notice_of(done), **context)


@post("/admin/users")
async def user_create_submit(request: Request[Any, Any, Any], viewer: Viewer, db: DB) -> Any:
    """Create a user."""
    require_platform_admin(viewer)
    data = await form_data(request)
    errors = FormErrors()
    body = body_from(
        CreateUserBody,
        {
            "email": data.get("email", ""),
            "password": data.get("password", ""),
            "name": data.get("name", ""),
            "is_platform_admin": data.get("is_platform_admin") == "on",
        },
        errors,
    )
    if body is not None:
        try:
            await admin.admin_create(db, Actor.of(request, viewer), body)
        except ProblemError as exc:
            await start_over(db, viewer)
            errors.add_problem(exc)
        else:
            return back_to("/ui/admin/users", "user_created")
    context = await users_context(db, viewer, q=None, cursor=None)
    context.update(errors=errors, values=data)
    return page("users.html", 400, notice="", **context)


async def _users_refused(
    db: AsyncSession, viewer: Principal, exc: ProblemError, *, mail_on: bool = False
) -> Template:
    """The users page again, with the refusal of a change (rolled back) at the top."""
    await start_over(db, viewer)
    context = await users_context(db, viewer, q=None, cursor=None, mail_on=mail_on)
    context["errors"].general = exc.detail
    return page("users.html", exc.status, notice="", **context)


@post("/admin/users/{user_id:str}/status")
async def user_status_submit(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Disable or enable a user."""
    require_platform_admin(viewer)
    data = await form_data(request)
    try:
        await admin.admin_update(
            db,
            runtime,
            Actor.of(request, viewer),
            user_id,
            UpdateUserBody(disabled=data.get("disabled") == "true"),
        )
    except ProblemError as exc:
        return await _users_refused(db, viewer, exc)
    return back_to("/ui/admin/users", "user_updated")


@post("/admin/users/{user_id:str}/password-reset")
async def user_reset_submit(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Mail a user a password-reset link (audited)."""
    require_platform_admin(viewer)
    try:
        await admin.admin_send_reset(db, runtime, Actor.of(request, viewer), user_id)
    except ProblemError as exc:
        return await _users_refused(db, viewer, exc, mail_on=True)
    return back_to("/ui/admin/users", "reset_link_sent")


@post("/admin/users/{user_id:str}/mfa-reset")
async def user_mfa_reset_submit(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Turn off a user's MFA, with the reason the audit log keeps (sessions end)."""
    require_platform_admin(viewer)
    errors = FormErrors()
    values = {"reason": (await form_data(request)).get("reason", "")}
    body = body_from(MfaResetBody, values, errors)
    try:
        if body is None:
            raise BadRequest("Give the reason (3 to 500 characters).", code="invalid_reason")
        await admin_reset_mfa(db, runtime, Actor.of(request, viewer), user_id, body.reason)
    except ProblemError as exc:
        return await _users_refused(db, viewer, exc)
    return back_to("/ui/admin/users", "mfa_reset")


def _day(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return utc(datetime.strptime(value, "%Y-%m-%d"))
    except ValueError:
        raise BadRequest("Use a date like 2025-01-31.", code="invalid_date", field=name) from None


@get("/admin/audit")
async def audit_page(
    viewer: Viewer,
    db: DB,
    org: Text = None,
    action: Text = None,
    since: Text = None,
    until: Text = None,
    cursor: Text = None,
) -> Any:
    """Audit events, newest first, filtered by org, action (``org.*``) and day range."""
    filters = {"org": org or "", "action": action or "", "since": since or "", "until": until or ""}
    events, next_cursor, error = [], None, ""
    try:
        org_id = None
        if org:
            found = await find_live_org(db, org)
            org_id = found.id if found else org
        listed = await events_page(
            db,
            viewer,
            org_id=org_id,
            action=action or None,
            since=_day(since, "since"),
            until=_day(until, "until"),
            limit=50,
            cursor=cursor,
        )
        events, next_cursor = listed.items, listed.next_cursor
    except ProblemError as exc:
        error = exc.detail
    return page(
        "audit.html",
        me=viewer.user,
        events=events,
        next_cursor=next_cursor,
        filters=filters,
        error=error,
    )


@get("/admin/keys")
async def keys_page(viewer: Viewer, db: DB, done: Text = None) -> Any:
    """Signing keys and their states, with a rotate button."""
    keys = await keys_of(db, viewer)
    return page("keys.html", me=viewer.user, keys=keys, notice=notice_of(done), error="")


@post("/admin/keys/rotate")
async def rotate_submit(
    request: Request[Any, Any, Any], viewer: Viewer, db: DB, runtime: RuntimeDep
) -> Any:
    """Start a key rotation."""
    try:
        await start_rotation(runtime, db, Actor.of(request, viewer))
    except ProblemError as exc:
        await start_over(db, viewer)
        keys = await keys_of(db, viewer)
        return page("keys.html", exc.status, me=viewer.user, keys=keys, notice="", error=exc.detail)
    return back_to("/ui/admin/keys", "key_rotated")


ROUTES = [
    user_mfa_reset_submit,
    users_page,
    user_create_submit,
    user_status_submit,
    user_reset_submit,
    audit_page,
    keys_page,
    rotate_submit,
]
