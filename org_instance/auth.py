"""Who may talk to this instance: the Host check and org-token authentication.

* :class:`HostCheck` wraps the whole app (before routing): a request whose Host is not one of
  the org's hostnames or the instance's internal names is refused with 421
  ``misdirected_request`` and logged with the host. ``/healthz`` and ``/readyz`` are exempt:
  orchestrators probe by pod or container IP, and probes reveal no org data.
* :class:`TokenAuth` requires a Bearer org token for this org on every route except the probes,
  the OpenAPI document (no org data) and the runner heartbeat (which carries a runner token).
  WebSocket clients, which cannot set headers from a browser, pass the token as the
  ``access_token`` query parameter (RFC 6750 §2.3); HTTP requests must use the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.types import ASGIApp, Receive, Scope, Send

from org_instance.config import normalize_host
from org_instance.verifier import kid_of
from orgplane_wire.backup.protocol import CONTROL_PLANE_SUBJECT, INTERNAL_PREFIX
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.problems import Forbidden, TooManyRequests, Unauthorized, send_problem

log = structlog.get_logger("orgplane.instance.auth")

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
#: Routes that do not take an org token (probes; the runner heartbeat has its own token; the
#: OpenAPI document, which holds no org data, behind the Host check like every other route;
#: the metrics, served on the instance's own port only: ``org_instance.metrics``; the browser
#: sign-in routes and landing page, which use the session cookie).
UNAUTHENTICATED = [
    "^/healthz$",
    "^/readyz$",
    "^/metrics$",
    "^/api/v1/runners/heartbeat$",
    "^/api/schema",
    # Browser sign-in and the landing page: a session cookie, not a Bearer token
    # (org_instance.browser_auth).
    "^/$",
    "^/auth/(login|callback|logout)$",
]
_SCOPES = (ScopeType.HTTP, ScopeType.WEBSOCKET)
WS_CLOSE_UNAUTHORIZED = 4401
WS_CLOSE_RATE_LIMITED = 4429


@dataclass(frozen=True)
class Member:
    """The caller: a user of this org and the claims of the org token they presented."""

    sub: str
    role: str
    claims: dict[str, Any]
    #: The ``kid`` of the key that signed the token (an emergency retirement names it).
    kid: str = ""

    @property
    def is_admin(self) -> bool:
        """Owners and admins change settings and runners."""
        return self.role in ("owner", "admin")


def require_admin(member: Member) -> None:
    """403 ``role_required`` unless the caller is an owner or admin of the org."""
    if not member.is_admin:
        raise Forbidden("Only the org's owners and admins may do this.", code="role_required")


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


class HostCheck:
    """Pure ASGI: refuse requests for hosts this org does not answer for (421)."""

    def __init__(self, app: ASGIApp, *, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _SCOPES or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        raw = _header(scope, b"host")
        if normalize_host(raw) in self.allowed:
            await self.app(scope, receive, send)
            return
        log.warning("misdirected request refused", host=raw[:255], path=scope["path"][:255])
        if scope["type"] == ScopeType.WEBSOCKET:
            await send({"type": "websocket.close", "code": 1008, "reason": "misdirected request"})
            return
        await send_problem(
            send,
            status=421,
            code="misdirected_request",
            title="Misdirected request",
            detail="This server does not answer for that host.",
        )


def _token_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        return connection.query_params.get("access_token", "")
    return ""


class TokenAuth(AbstractAuthenticationMiddleware):
    """Authenticate org tokens with the instance's verifier; count and rate-limit requests."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        runtime = connection.app.state.instance
        is_ws = connection.scope["type"] == ScopeType.WEBSOCKET
        token = _token_of(connection)
        try:
            if not token:
                raise InvalidToken("no token")
            claims = await runtime.verifier.verify(token)
        except InvalidToken as exc:
            log.info("token refused", reason=exc.reason, path=connection.url.path[:255])
            if is_ws:
                raise WebSocketException(
                    detail="invalid_token", code=WS_CLOSE_UNAUTHORIZED
                ) from None
            detail = (
                "Send a Bearer org token for this org."
                if not token
                else ("The token is invalid, expired or not for this org.")
            )
            raise Unauthorized(detail, presented=bool(token)) from None
        if runtime.revocations.refuses(claims):
            log.info("revoked token refused", path=connection.url.path[:255])
            if is_ws:
                raise WebSocketException(
                    detail="invalid_token", code=WS_CLOSE_UNAUTHORIZED
                ) from None
            raise Unauthorized("The token was revoked; exchange a new one.", presented=True)
        if (claims["sub"] == CONTROL_PLANE_SUBJECT) != connection.url.path.startswith(
            INTERNAL_PREFIX
        ):
            # The control plane's own tokens open /internal/* and nothing else; no user's token
            # opens /internal/* (the routes check the scope too).
            raise Forbidden(
                "This token is not for this part of the org's API.", code="wrong_token_kind"
            )
        member = Member(
            sub=claims["sub"], role=claims["org_role"], claims=claims, kid=kid_of(token)
        )
        try:
            await runtime.count_request(member.sub)
        except TooManyRequests:
            if is_ws:
                raise WebSocketException(
                    detail="rate_limited", code=WS_CLOSE_RATE_LIMITED
                ) from None
            raise
        structlog.contextvars.bind_contextvars(user_id=member.sub)
        return AuthenticationResult(user=member, auth=claims)
