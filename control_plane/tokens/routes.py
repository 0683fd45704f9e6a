"""Every route of the tokens feature: discovery, the token, revocation and introspection
endpoints, keys, support access."""

from __future__ import annotations

from typing import Any

from control_plane.tokens.discovery import ROUTES as DISCOVERY_ROUTES
from control_plane.tokens.key_routes import ROUTES as KEY_ROUTES
from control_plane.tokens.oauth import ROUTES as OAUTH_ROUTES
from control_plane.tokens.support_routes import ROUTES as SUPPORT_ROUTES
from control_plane.tokens.token_status import ROUTES as STATUS_ROUTES

ROUTES: list[Any] = [
    *DISCOVERY_ROUTES,
    *OAUTH_ROUTES,
    *STATUS_ROUTES,
    *KEY_ROUTES,
    *SUPPORT_ROUTES,
]
