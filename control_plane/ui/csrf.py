"""The UI's CSRF defences: a token bound to the sign-in, and an ``Origin`` check.

Litestar's ``CSRFConfig`` is a double-submit cookie: a form is accepted when its
``_csrf_token`` matches the ``orgplane_csrf`` cookie. Alone, that is not bound to the session:
a token and cookie pair from one session works in any other, and a page that can set a cookie
for the platform's domain (an org's host is a subdomain of it) can plant a pair of its own.
So, once signed in, the cookie's token is derived from the sign-in: HMAC of the access token's
``sid`` (its refresh-token family, the same across refreshes) under the CSRF key. The session
cookies carry it (:func:`session_csrf_cookie`) and :func:`check_bound` refuses a signed-in
write whose cookie, hence whose form token, is not the session's own.

:func:`same_origin` is a guard on every UI route: a write (POST, PUT, PATCH, DELETE) whose
``Origin`` (or, without one, ``Referer``) is not the platform's public URL is refused.
Browsers send ``Origin`` with every cross-origin form post, so a request with neither header
is not a browser's cross-site request; it still needs its CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash

from control_plane.auth import SAFE_METHODS
from control_plane.runtime import resolve_secret
from control_plane.settings import Settings
from orgplane_wire.problem_handlers import problem_response
from orgplane_wire.problems import Forbidden

CSRF_COOKIE: Final = "orgplane_csrf"
CSRF_PATH: Final = "/ui"


class CrossSiteRefused(Forbidden):
    """A write the CSRF defences refused: answered problem+json, even on a UI route."""


@lru_cache(maxsize=16)
def csrf_secret(settings: Settings) -> str:
    """The CSRF key: derived from the deployment secret, so CSRF tokens can't sign anything."""
    return hmac.new(
        resolve_secret(settings).encode(), b"orgplane ui csrf v1", hashlib.sha256
    ).hexdigest()


def session_token(settings: Settings, session_id: str) -> str:
    """The CSRF token of the sign-in ``session_id``, in Litestar's format (secret + its HMAC)."""
    key = csrf_secret(settings)
    digest = hmac.new(key.encode(), f"session:{session_id}".encode(), hashlib.sha256)
    secret = digest.hexdigest()[:CSRF_SECRET_LENGTH]
    return secret + generate_csrf_hash(token=secret, secret=key)


def session_csrf_cookie(settings: Settings, session_id: str, *, secure: bool) -> Cookie:
    """The ``orgplane_csrf`` cookie of a signed-in browser."""
    return Cookie(
        key=CSRF_COOKIE,
        value=session_token(settings, session_id),
        path=CSRF_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=settings.tokens.refresh_token_ttl,
    )


def check_bound(
    request: Request[Any, Any, Any], settings: Settings, claims: dict[str, Any]
) -> None:
    """403 ``csrf_session_mismatch`` for a signed-in write whose CSRF cookie is not its
    session's. (Litestar's middleware has already matched the form's token to the cookie.)

    Access tokens issued before tokens carried ``sid`` (they live 15 minutes) are not bound.
    """
    session_id = claims.get("sid")
    if request.method in SAFE_METHODS or not isinstance(session_id, str):
        return
    presented = request.cookies.get(CSRF_COOKIE, "")
    if not hmac.compare_digest(presented.encode(), session_token(settings, session_id).encode()):
        raise CrossSiteRefused(
            "This form belongs to another session. Reload the page and try again.",
            code="csrf_session_mismatch",
        )


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port or default
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + ("" if port == default else f":{port}")


async def same_origin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: 403 ``cross_origin_request`` for a write from another origin than the platform's
    public URL (``Origin``, else ``Referer``; a request with neither passes on to the token)."""
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    settings: Settings = connection.app.state.runtime.settings
    claimed = connection.headers.get("origin") or connection.headers.get("referer")
    if claimed is None:
        return
    if _origin(claimed) != _origin(settings.server.base_url):
        raise CrossSiteRefused("This request came from another site.", code="cross_origin_request")


def on_cross_site(request: Request[Any, Any, Any], exc: CrossSiteRefused) -> Response[Any]:
    """problem+json, not the UI's HTML error page: nothing a browser should render."""
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.scope["path"],
    )
