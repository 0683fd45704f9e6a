"""The UI's browser session: two HttpOnly cookies, transparent refresh, security headers.

``orgplane_session`` holds the control-plane access token (the same token API clients send as
Bearer, so :func:`control_plane.auth.provide_principal` accepts it too); ``orgplane_refresh``
holds the opaque refresh token, scoped to ``/ui`` so it only travels where the UI needs it.
When the access token has expired, :func:`provide_viewer` spends the refresh token and the
middleware sets the new pair on the response.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias
from urllib.parse import quote

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.middleware import ASGIMiddleware
from litestar.response import Redirect
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import SESSION_COOKIE, Principal, verify_access_token
from control_plane.db.models import User
from control_plane.orgs.access import OrgAccess
from control_plane.orgs.guards import resolve_org_access
from control_plane.runtime import Runtime, RuntimeDep
from control_plane.security.challenge import bearer_challenge
from control_plane.tokens.access import RefreshRefused, TokenPair, rotate_refresh
from control_plane.ui.csrf import check_bound, session_csrf_cookie
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.problem_handlers import problem_response

REFRESH_COOKIE: Final = "orgplane_refresh"
REFRESH_PATH: Final = "/ui"
#: Scope-state keys the dependency leaves for the middleware.
NEW_PAIR: Final = "ui_new_pair"
CLEAR_SESSION: Final = "ui_clear_session"
ACCESS_TOKEN: Final = "ui_access_token"

CSP: Final = b"content-security-policy"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


#: ``form-action`` sources for native apps' loopback redirects (RFC 8252 §7.3: the CLI's
#: ``orgplane login --sso`` listens on a port picked at start): the sign-in form's redirects
#: end there when the flow began signed out.
LOOPBACK_REDIRECTS: Final = "http://127.0.0.1:*"


def security_headers(*, org_origins: str) -> list[tuple[bytes, bytes]]:
    """The headers of every UI response.

    ``form-action`` also names the orgs' origins (``http://*.{base_domain}``): browsers check
    the redirect a form answers with against it, and "Open" answers with the org's URL (and
    the sign-in form, started from an org's sign-in, with the org's callback); and loopback
    (:data:`LOOPBACK_REDIRECTS`).
    """
    policy = CONTENT_SECURITY_POLICY + f" {LOOPBACK_REDIRECTS}"
    policy += f" {org_origins}" if org_origins else ""
    return [
        (CSP, policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]


Viewer: TypeAlias = NamedDependency[Principal]


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


def cookie_secure(runtime: Runtime, scheme: str) -> bool:
    """Mark cookies Secure when configured so, when the public URL is https, or when the
    request came over HTTPS."""
    return runtime.settings.secure_cookies or scheme == "https"


def session_cookies(runtime: Runtime, pair: TokenPair, *, secure: bool) -> list[Cookie]:
    """The two cookies of a signed-in browser."""
    refresh_ttl = runtime.settings.tokens.refresh_token_ttl
    return [
        Cookie(
            key=SESSION_COOKIE,
            value=pair.access_token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=refresh_ttl,
        ),
        Cookie(
            key=REFRESH_COOKIE,
            value=pair.refresh_token,
            path=REFRESH_PATH,
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=refresh_ttl,
        ),
        *(
            [session_csrf_cookie(runtime.settings, pair.session_id, secure=secure)]
            if pair.session_id
            else []
        ),
    ]


def cleared_cookies(*, secure: bool) -> list[Cookie]:
    """Cookies that make the browser forget the session."""
    return [
        Cookie(
            key=SESSION_COOKIE,
            value="",
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=0,
        ),
        Cookie(
            key=REFRESH_COOKIE,
            value="",
            path=REFRESH_PATH,
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=0,
        ),
    ]


async def _principal(token: str, runtime: Runtime, db: AsyncSession) -> Principal | None:
    try:
        claims = await verify_access_token(token, runtime=runtime, db=db)
    except InvalidToken:
        return None
    user = await db.get(User, claims["sub"])
    if user is None or user.disabled:
        return None
    return Principal(user=user, claims=claims)


async def provide_viewer(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    db: NamedDependency[AsyncSession],
) -> Principal:
    """Dependency: the signed-in user of a UI request, refreshing an expired access token."""
    token = request.cookies.get(SESSION_COOKIE)
    principal = await _principal(token, runtime, db) if token else None
    if principal is None:
        refresh = request.cookies.get(REFRESH_COOKIE)
        if not refresh:
            raise LoginRequired
        try:
            _, pair = await rotate_refresh(runtime, db, refresh)
        except RefreshRefused:
            request.scope["state"][CLEAR_SESSION] = True
            raise LoginRequired from None
        request.scope["state"][NEW_PAIR] = pair
        token = pair.access_token
        principal = await _principal(token, runtime, db)
        if principal is None:
            raise LoginRequired
    check_bound(request, runtime.settings, principal.claims)
    request.scope["state"][ACCESS_TOKEN] = token
    return principal


async def provide_viewer_org_access(
    request: Request[Any, Any, Any], viewer: Viewer, db: NamedDependency[AsyncSession]
) -> OrgAccess:
    """Dependency ``access`` of the UI's org pages: the org of ``{org_ref}`` as the viewer sees
    it (404 page when they cannot), with the role the route declares checked."""
    return await resolve_org_access(request, viewer, db)


def viewer_token(request: Request[Any, Any, Any]) -> str:
    """The access token :func:`provide_viewer` accepted for this request."""
    return str(request.scope["state"][ACCESS_TOKEN])


def on_login_required(request: Request[Any, Any, Any], _: LoginRequired) -> Response[Any]:
    """Send the browser to the login page, remembering where it wanted to go."""
    if request.url.path.endswith(".json"):
        # Polled by the page's script, which reads only the status: a 401 like the API's.
        return problem_response(
            status=401,
            code="unauthenticated",
            title="Authentication required",
            detail="Sign in again.",
            instance=request.scope["path"],
            headers=bearer_challenge({}, authorization=""),
        )
    wanted = request.url.path if request.method == "GET" else "/ui/"
    if request.url.query and request.method == "GET":
        wanted += "?" + request.url.query
    response: Response[Any] = Redirect(f"/ui/login?next={quote(wanted, safe='')}", status_code=303)
    if request.scope["state"].get(CLEAR_SESSION):
        secure = cookie_secure(request.app.state.runtime, request.url.scheme)
        response.cookies.extend(cleared_cookies(secure=secure))
    return response


class UIResponseMiddleware(ASGIMiddleware):
    """Adds the security headers to every UI response and sets a refreshed session."""

    def __init__(self, *, org_origins: str = "") -> None:
        self.headers = security_headers(org_origins=org_origins)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Wrap ``send`` to add headers to the response start."""

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A page that sets its own policy (the consent page widens form-action to the
                # client's redirect origin) keeps it; the other headers are always added.
                own_policy = any(name.lower() == b"content-security-policy" for name, _ in headers)
                headers.extend(h for h in self.headers if not (own_policy and h[0] == CSP))
                pair = scope.get("state", {}).get(NEW_PAIR)
                if pair is not None:
                    runtime = scope["litestar_app"].state.runtime
                    secure = cookie_secure(runtime, scope.get("scheme", "http"))
                    headers.extend(
                        c.to_encoded_header() for c in session_cookies(runtime, pair, secure=secure)
                    )
                message = {**message, "headers": headers}
            await send(message)

        await next_app(scope, receive, send_with_headers)
