"""Browser sign-in to an org instance: the instance is an OAuth client of the control plane.

* ``GET /auth/login`` starts the authorization-code flow with PKCE (S256): the verifier stays
  in the instance's memory under a random ``state`` (:mod:`org_instance.browser_sessions`),
  the ``state`` also goes into a short-lived host-only cookie, and the browser is sent to the
  control plane's ``/oauth/authorize`` as client ``oi-<org id>``, with the redirect URI on the
  host it came in by (the control plane accepts only the org's own hosts).
* ``GET /auth/callback`` checks the ``state`` against the cookie (a callback the browser did not
  start is refused), redeems the code on the back channel (HTTP Basic with the instance
  credential), verifies the org token with the instance's own verifier, and opens a session:
  a host-only cookie (HttpOnly, SameSite=Lax, ``Secure`` and the ``__Host-`` prefix over
  https) that lives until the token's ``exp``. No token ever appears in a URL.
* ``POST /auth/logout`` ends the session (same-origin posts only).
* ``GET /`` is the landing page of a signed-in browser (:mod:`org_instance.browser_pages`).

These are browser pages, not API operations: the instance's OpenAPI document leaves them out.
Errors a browser can cause are problem+json with stable codes (``sign_in_state_invalid``,
``sign_in_refused``, ``sign_in_failed``); nothing is stored for them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import httpx
import structlog
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect

from org_instance.browser_pages import landing_page, signed_out_page
from org_instance.browser_sessions import PENDING_SECONDS, BrowserSession, BrowserSessions
from org_instance.deps import Instance
from org_instance.runtime import InstanceRuntime
from orgplane_wire.contract import SIGN_IN_CALLBACK_PATH, instance_client_id
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.problems import BadRequest, Forbidden, ProblemError

log = structlog.get_logger("orgplane.instance.browser")

SESSION_COOKIE: Final = "orgplane_org_session"
LOGIN_COOKIE: Final = "orgplane_login"
SCOPE: Final = "openid profile email"
NO_STORE: Final = {"Cache-Control": "no-store"}


class SignInFailed(ProblemError):
    status, code, title = 502, "sign_in_failed", "Sign-in failed"


def _secure(request: Request[Any, Any, Any]) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" or request.url.scheme == "https"


def cookie_name(base: str, *, secure: bool) -> str:
    """``base``, with the ``__Host-`` prefix over https (host-only, ``Path=/``, ``Secure``)."""
    return f"__Host-{base}" if secure else base


def _cookie(name: str, value: str, *, secure: bool, max_age: int) -> Cookie:
    return Cookie(
        key=cookie_name(name, secure=secure),
        value=value,
        path="/",
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="lax",
    )


def _origin(request: Request[Any, Any, Any]) -> str:
    # HostCheck let only the org's hosts (and internal names) through.
    return f"{'https' if _secure(request) else 'http'}://{request.headers.get('host', '')}"


def _store(request: Request[Any, Any, Any]) -> BrowserSessions:
    sessions: BrowserSessions = request.app.state.browser_sessions
    return sessions


def current_session(
    request: Request[Any, Any, Any], instance: InstanceRuntime
) -> BrowserSession | None:
    """The browser's live session, or None (an expired or revoked one is ended here)."""
    value = request.cookies.get(cookie_name(SESSION_COOKIE, secure=_secure(request)), "")
    return _store(request).get(value, instance.revocations.refuses)


@get("/auth/login", sync_to_thread=False, status_code=303, include_in_schema=False)
def login(request: Request[Any, Any, Any], instance: Instance) -> Redirect:
    """Start signing the browser in at the control plane (authorization code with PKCE)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = _store(request).begin(verifier, "/")
    query = urlencode(
        {
            "client_id": instance_client_id(instance.config.org_id),
            "redirect_uri": _origin(request) + SIGN_IN_CALLBACK_PATH,
            "response_type": "code",
            "scope": SCOPE,
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )
    secure = _secure(request)
    return Redirect(
        f"{instance.config.issuer}/oauth/authorize?{query}",
        status_code=303,
        headers=NO_STORE,
        cookies=[_cookie(LOGIN_COOKIE, state, secure=secure, max_age=PENDING_SECONDS)],
    )


def _id_claims(id_token: str) -> dict[str, Any]:
    """The ID token's claims. It came straight from the token endpoint over the back channel,
    so the channel vouches for its issuer (OpenID Connect Core §3.1.3.7, step 6)."""
    try:
        body = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


async def _redeem(
    request: Request[Any, Any, Any], instance: InstanceRuntime, code: str, verifier: str
) -> dict[str, Any]:
    config = instance.config
    http: httpx.AsyncClient = request.app.state.browser_http
    try:
        answer = await http.post(
            f"{config.control_plane_url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": _origin(request) + SIGN_IN_CALLBACK_PATH,
                "code_verifier": verifier,
            },
            auth=(instance_client_id(config.org_id), config.instance_credential),
        )
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("sign-in: token endpoint unreachable", error=type(exc).__name__)
        raise SignInFailed("The control plane could not be reached; try again.") from None
    if not isinstance(body, dict):
        raise SignInFailed("The control plane answered something unexpected.")
    if answer.status_code != 200:
        error = str(body.get("error", ""))
        log.info("sign-in refused", error=error[:64])
        if error == "invalid_target":
            detail = str(body.get("error_description", ""))[:300] or "No access."
            raise Forbidden(f"You cannot enter this org: {detail}", code="sign_in_refused")
        raise BadRequest("The sign-in could not be completed; start again.", code="sign_in_failed")
    return body


async def _open_session(
    instance: InstanceRuntime, body: dict[str, Any]
) -> tuple[BrowserSession, dict[str, Any]]:
    try:
        claims = await instance.verifier.verify(str(body.get("access_token", "")))
    except InvalidToken as exc:
        log.warning("sign-in: org token refused", reason=exc.reason)
        raise SignInFailed("The control plane's token was not valid for this org.") from None
    identity = _id_claims(str(body.get("id_token", "")))
    client_id = instance_client_id(instance.config.org_id)
    if (
        identity.get("sub") != claims["sub"]
        or identity.get("aud") != client_id
        or identity.get("iss") != instance.config.issuer
    ):
        raise SignInFailed("The control plane's ID token does not match its org token.")
    if instance.revocations.refuses(claims):
        raise Forbidden("The sign-in was revoked.", code="sign_in_refused")
    email, name = identity.get("email"), identity.get("name")
    session = BrowserSession(
        claims=claims,
        email=email if isinstance(email, str) else "",
        name=name if isinstance(name, str) else "",
    )
    return session, claims


@get(SIGN_IN_CALLBACK_PATH, status_code=303, include_in_schema=False)
async def callback(
    request: Request[Any, Any, Any],
    instance: Instance,
    sign_in: Annotated[str, QueryParameter(name="state")] = "",
    code: FromQuery[str] = "",
    error: FromQuery[str] = "",
    iss: FromQuery[str] = "",
) -> Redirect:
    """Finish the sign-in: check the state, redeem the code, open the session."""
    secure = _secure(request)
    cookie = request.cookies.get(cookie_name(LOGIN_COOKIE, secure=secure), "")
    state = sign_in
    if not state or not cookie or not hmac.compare_digest(state.encode(), cookie.encode()):
        raise BadRequest(
            "This sign-in was not started by this browser; start again.",
            code="sign_in_state_invalid",
        )
    pending = _store(request).finish(state)
    if pending is None:
        raise BadRequest(
            "This sign-in expired or was used; start again.", code="sign_in_state_invalid"
        )
    if iss and iss != instance.config.issuer:  # RFC 9207
        raise BadRequest("The answer came from another issuer.", code="sign_in_state_invalid")
    if error or not code:
        raise Forbidden(
            f"The control plane refused the sign-in ({error[:64] or 'no code'}).",
            code="sign_in_refused",
        )
    body = await _redeem(request, instance, code, pending.verifier)
    session, claims = await _open_session(instance, body)
    value = _store(request).open(session)
    lifetime = max(1, session.expires_at - int(time.time()))
    log.info("browser signed in", user_id=claims["sub"])
    return Redirect(
        pending.next_path,
        status_code=303,
        headers=NO_STORE,
        cookies=[
            _cookie(SESSION_COOKIE, value, secure=secure, max_age=lifetime),
            _cookie(LOGIN_COOKIE, "", secure=secure, max_age=0),
        ],
    )


@post("/auth/logout", status_code=200, include_in_schema=False)
async def logout(request: Request[Any, Any, Any], instance: Instance) -> Response[str]:
    """End the browser's session on this host."""
    origin = request.headers.get("origin")
    if origin is not None and origin != _origin(request):
        raise Forbidden("Sign out from this org's own pages.", code="cross_origin_refused")
    secure = _secure(request)
    _store(request).end(request.cookies.get(cookie_name(SESSION_COOKIE, secure=secure), ""))
    answer = signed_out_page(instance)
    answer.set_cookie(_cookie(SESSION_COOKIE, "", secure=secure, max_age=0))
    return answer


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any], instance: Instance) -> Response[str]:
    """The landing page of a signed-in browser; others are sent to sign in."""
    session = current_session(request, instance)
    if session is None:
        return Redirect("/auth/login", status_code=303, headers=NO_STORE)
    return landing_page(instance, session)


ROUTES = [login, callback, logout, home]
