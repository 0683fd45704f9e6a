"""``GET /oauth/authorize`` and the pages behind it: sign-in, consent, the code.

The endpoint itself only forwards to ``/ui/oauth/authorize`` with the same query. There the
UI's session applies: its cookies (the refresh cookie is scoped to ``/ui``, so an expired
access token is renewed without a new sign-in), its login redirect that comes back with the
whole request, its CSRF protection of the consent form, its security headers. Third-party
clients get a consent page every time (nothing is remembered); first-party clients get the
code at once (unless ``prompt=consent``). ``prompt=none`` never shows a page: it answers
``login_required`` or ``consent_required`` instead. The consent page widens ``form-action``
to the client's redirect origin: the browser checks the redirect a form answers with against
it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request, Response, get, post
from litestar.response import Redirect, Template

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.client_ip import client_ip
from control_plane.deps import DB, RuntimeDep
from control_plane.oidc.authorize_request import (
    MAX_STATE,
    AuthRequest,
    RedirectedError,
    ShownError,
    parse_request,
    redirect_with,
)
from control_plane.oidc.codes import Grant, issue_code
from control_plane.runtime import Runtime
from control_plane.tokens.discovery import AUTHORIZE_PATH
from control_plane.tokens.mfa_gate import subject_amr
from control_plane.ui.forms import page
from control_plane.ui.session import CONTENT_SECURITY_POLICY, LoginRequired, provide_viewer

PAGE_PATH: Final = "/ui/oauth/authorize"
#: What each scope lets the client read, for the consent page.
SCOPE_WORDS: Final = {
    "openid": "know who you are (your account id)",
    "profile": "read your name",
    "email": "read your email address and whether it is verified",
}


@get(AUTHORIZE_PATH, tags=["oauth"], sync_to_thread=False, status_code=303)
def authorize(request: Request[Any, Any, Any]) -> Redirect:
    """The OAuth 2.1 authorization endpoint: code flow with PKCE (S256) only; the browser
    continues on the sign-in and consent pages of the UI."""
    query = request.url.query
    return Redirect(PAGE_PATH + (f"?{query}" if query else ""), status_code=303)


def _shown(exc: ShownError) -> Template:
    return Template(
        template_name="error.html",
        status_code=400,
        context={"status": 400, "message": exc.detail, "me": None},
        media_type="text/html",
    )


def _back(auth: AuthRequest, runtime: Runtime, params: dict[str, str]) -> Redirect:
    if auth.state is not None:
        params["state"] = auth.state
    params["iss"] = runtime.issuer  # RFC 9207: which server answered
    return Redirect(redirect_with(auth.redirect_uri, params), status_code=303)


async def _checked(
    request: Request[Any, Any, Any], db: DB, values: dict[str, list[str]]
) -> AuthRequest | Response[Any]:
    """The checked request, or the answer that refuses it."""
    try:
        settings = request.app.state.runtime.settings
        return await parse_request(settings, db, lambda name: values.get(name, []))
    except ShownError as exc:
        return _shown(exc)
    except RedirectedError as exc:
        # The client and redirect URI were checked before anything that raises this.
        uri = values["redirect_uri"][0]
        state = values.get("state", [None])[0]
        params = {"error": exc.error, "error_description": exc.description}
        if state and len(state) <= MAX_STATE:
            params["state"] = state
        params["iss"] = request.app.state.runtime.issuer
        return Redirect(redirect_with(uri, params), status_code=303)


async def _code(
    request: Request[Any, Any, Any], runtime: Runtime, db: DB, auth: AuthRequest, viewer: Principal
) -> Redirect:
    iat = viewer.claims.get("iat")
    grant = Grant(
        client_id=auth.client.id,
        redirect_uri=auth.redirect_uri,
        scope=auth.scope,
        nonce=auth.nonce,
        code_challenge=auth.code_challenge,
        session_id=str(viewer.claims.get("sid", "")),
        amr=" ".join(subject_amr(viewer.claims, None)),
        auth_time=datetime.fromtimestamp(iat if isinstance(iat, int) else 0, UTC),
    )
    record(
        db,
        action="oauth.authorize",
        actor=viewer.user,
        target_type="oauth_client",
        target_id=auth.client.id,
        ip=client_ip(request),
        scope=auth.scope,
    )
    code = await issue_code(db, user=viewer.user, grant=grant)
    return _back(auth, runtime, {"code": code})


def _consent(auth: AuthRequest, viewer: Principal) -> Template:
    redirect = urlsplit(auth.redirect_uri)
    policy = CONTENT_SECURITY_POLICY + f" {redirect.scheme}://{redirect.netloc}"
    answer = page(
        "consent.html",
        me=viewer.user,
        client=auth.client,
        scopes=[SCOPE_WORDS[s] for s in auth.scope.split() if s in SCOPE_WORDS],
        fields=auth.hidden_fields(),
    )
    answer.headers["content-security-policy"] = policy
    return answer


@get(AUTHORIZE_PATH)  # under the UI's router: PAGE_PATH
async def authorize_page(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """Check the request, make sure the user is signed in, then consent or the code."""
    checked = await _checked(request, db, dict(request.query_params.dict()))
    if not isinstance(checked, AuthRequest):
        return checked
    try:
        viewer = await provide_viewer(request, runtime, db)
    except LoginRequired:
        if "none" in checked.prompt:  # silent sign-in asked: no page may be shown
            return _back(checked, runtime, {"error": "login_required"})
        raise  # the UI's handler: sign in, come back
    if checked.client.first_party and "consent" not in checked.prompt:
        return await _code(request, runtime, db, checked, viewer)
    if "none" in checked.prompt:
        return _back(checked, runtime, {"error": "consent_required"})
    return _consent(checked, viewer)


@post(AUTHORIZE_PATH, status_code=303)  # PAGE_PATH
async def consent_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB) -> Any:
    """The user's answer on the consent page: a code, or ``access_denied``."""
    form = await request.form()
    values = {k: [str(v) for v in form.getall(k)] for k in form if k != "_csrf_token"}
    checked = await _checked(request, db, values)
    if not isinstance(checked, AuthRequest):
        return checked
    viewer = await provide_viewer(request, runtime, db)
    if values.get("decision") != ["allow"]:
        return _back(checked, runtime, {"error": "access_denied"})
    return await _code(request, runtime, db, checked, viewer)


ROUTES = [authorize]
PAGE_ROUTES = [authorize_page, consent_submit]
