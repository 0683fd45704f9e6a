"""The org switcher: my orgs, "Open", and accepting invites.

For a member, "Open" first runs the RFC 8693 exchange with the session's access token, so that
a refusal (suspended org, an MFA requirement) is shown here, in the UI; the token it buys is
dropped.
A member is then sent to the instance's ``/auth/login`` on the org's host, which signs the
browser in through the control plane (the instance is an OAuth client of it:
``control_plane.oidc.builtin_clients``, ``org_instance.browser_auth``): no token travels in
any URL. A platform admin entering an org they are not a member of (support access) gives a
reason: it is checked here with the org's approval rule and the staff MFA rule, without minting
a token, and kept for the instance's sign-in, whose token grant runs the exchange with it
(``control_plane.tokens.support_open``): the same way in, and one audited support access.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import Principal
from control_plane.branding.resolve import resolved_for
from control_plane.client_ip import client_ip
from control_plane.db.models import Org
from control_plane.deps import DB, RuntimeDep
from control_plane.members.invites import accept_invite
from control_plane.orgs.access import caller_roles
from control_plane.orgs.guards import OrgAccessDep
from control_plane.routing.org_urls import org_url
from control_plane.runtime import Runtime
from control_plane.tokens import support_open
from control_plane.tokens.exchange import ExchangeRequest, exchange_token
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, OAuthError
from control_plane.tokens.mfa_gate import check_mfa, subject_amr
from control_plane.tokens.support_access import SupportAccessRefused, staff_entry
from control_plane.ui.forms import FormErrors, back_to, form_data, notice_of, page, start_over
from control_plane.ui.org_pages import Done
from control_plane.ui.session import Viewer, viewer_token
from orgplane_wire.problems import ProblemError


async def my_orgs_context(db: AsyncSession, viewer: Principal) -> dict[str, Any]:
    """The viewer's orgs with their role, by slug, and the branding each shows."""
    roles = await caller_roles(db, viewer.user)
    orgs = (
        await db.exec(select(Org).where(col(Org.id).in_(list(roles))).order_by(col(Org.slug)))
    ).all()
    return {
        "me": viewer.user,
        "orgs": [(org, roles[org.id]) for org in orgs],
        "brandings": await resolved_for(db, list(orgs)),
    }


@get("/orgs")
async def my_orgs(viewer: Viewer, db: DB, done: Done = None) -> Any:
    """Every org the viewer belongs to, with role and status, and an "Open" button each."""
    return page(
        "switcher.html", notice=notice_of(done), error="", **await my_orgs_context(db, viewer)
    )


@post("/orgs/{org_ref:str}/open")
async def open_org(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Check the viewer may enter the org, then go to its instance's sign-in."""
    data = await form_data(request)
    if access.role is None:  # staff: support access (the instance's sign-in takes the reason)
        try:
            reason, _ = await staff_entry(
                db, org=access.org, staff=viewer.user, reason=data.get("reason")
            )
            check_mfa(access.org, subject_amr(viewer.claims, None), staff=True)
        except SupportAccessRefused as exc:
            return await _refused(db, viewer, exc.message)
        except OAuthError as exc:
            return await _refused(db, viewer, exc.description)
        await support_open.remember(
            runtime.support_open, user_id=viewer.user.id, org_id=access.org.id, reason=reason
        )
        return _to_sign_in(runtime, access.org.slug)
    exchange = ExchangeRequest(
        subject_token=viewer_token(request),
        subject_token_type=ACCESS_TOKEN_TYPE,
        audience=(f"org:{access.org.slug}",),
        ip=client_ip(request),
    )
    try:
        await exchange_token(runtime, db, request=exchange)
    except OAuthError as exc:
        return await _refused(db, viewer, exc.description)
    return _to_sign_in(runtime, access.org.slug)


async def _refused(db: AsyncSession, viewer: Principal, error: str) -> Any:
    await start_over(db, viewer)
    return page("switcher.html", 403, notice="", error=error, **await my_orgs_context(db, viewer))


def _to_sign_in(runtime: Runtime, slug: str) -> Response[Any]:
    """To the instance's sign-in on the org's host (no token in the URL)."""
    target = f"{org_url(runtime.settings, slug)}auth/login"
    response: Response[Any] = Redirect(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


@get("/invites/accept")
async def accept_page(viewer: Viewer) -> Any:
    """The accept form; the script fills the token in from the link's fragment."""
    return page("invite_accept.html", me=viewer.user, errors=FormErrors())


@post("/invites/accept")
async def accept_submit(request: Request[Any, Any, Any], viewer: Viewer, db: DB) -> Any:
    """Spend the invite token for the signed-in user."""
    data = await form_data(request)
    errors = FormErrors()
    token = data.get("token", "")
    if not token or len(token) > 200:
        errors.fields["token"] = "Paste the invite token from your invite link."
        return page("invite_accept.html", 400, me=viewer.user, errors=errors)
    try:
        await accept_invite(db, user=viewer.user, token=token, ip=client_ip(request))
        await db.commit()
    except ProblemError as exc:
        await start_over(db, viewer)
        errors.fields["token"] = exc.detail
        return page("invite_accept.html", exc.status, me=viewer.user, errors=errors)
    return back_to("/ui/orgs", "invite_accepted")


ROUTES = [my_orgs, open_org, accept_page, accept_submit]
