"""Scopes mean something: every user route needs a scope of the org token, not just a role.

Token exchange grants ``org:read org:write`` to members, adds ``org:admin`` for admins and
``org:owner`` for owners, and a client may ask for fewer (``scope=org:read``: a read-only
token). The instance checks them per route with one app-wide guard:

* a route's ``opt["scope"]`` names what it needs (``org:admin`` for settings and runners);
* otherwise reads (GET, HEAD, OPTIONS, WebSocket subscriptions) need ``org:read`` and every
  other method ``org:write``.

A member (whose role could never carry ``org:admin``) on an admin route is left to the route's
role check, which answers 403 ``role_required`` as before.

A missing scope answers 403 ``insufficient_scope`` with ``WWW-Authenticate: Bearer
error="insufficient_scope", scope="..."`` (RFC 6750 §3.1); a WebSocket is closed with 4403.
Routes without an org token (probes, the runner heartbeat) and the control plane's
``/internal/*`` routes, which check their own operation scopes, are left to their own checks.
"""

from __future__ import annotations

from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException
from litestar.handlers.base import BaseRouteHandler

from org_instance.auth import Member
from orgplane_wire.backup.protocol import INTERNAL_PREFIX
from orgplane_wire.problems import Forbidden

READ: Final = "org:read"
WRITE: Final = "org:write"
ADMIN: Final = "org:admin"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
WS_CLOSE_INSUFFICIENT_SCOPE: Final = 4403


def needed_scope(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> str:
    """The scope ``handler`` needs for this request."""
    declared = handler.opt.get("scope")
    if isinstance(declared, str):
        return declared
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        return READ
    return READ if connection.scope.get("method", "GET") in SAFE_METHODS else WRITE


def requires_scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard: the caller's org token carries the scope the route needs."""
    member = connection.scope.get("user")
    if not isinstance(member, Member) or connection.url.path.startswith(INTERNAL_PREFIX):
        return
    needed = needed_scope(connection, handler)
    if needed in str(member.claims.get("scope", "")).split():
        return
    if needed == ADMIN and not member.is_admin:
        return  # the route's role check answers: 403 role_required says more than the scope

    if connection.scope["type"] == ScopeType.WEBSOCKET:
        raise WebSocketException(detail="insufficient_scope", code=WS_CLOSE_INSUFFICIENT_SCOPE)
    raise Forbidden(
        f"This needs the {needed} scope; the token does not carry it.",
        code="insufficient_scope",
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        scope=needed,
    )
