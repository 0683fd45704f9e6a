"""Every route of the OpenID provider outside the UI: the authorization endpoint, userinfo,
discovery and client registration (the sign-in and consent pages are mounted by the UI)."""

from __future__ import annotations

from typing import Any

from control_plane.oidc.authorize_pages import ROUTES as AUTHORIZE_ROUTES
from control_plane.oidc.client_routes import ROUTES as CLIENT_ROUTES
from control_plane.oidc.discovery import ROUTES as DISCOVERY_ROUTES
from control_plane.oidc.userinfo import ROUTES as USERINFO_ROUTES

ROUTES: list[Any] = [*AUTHORIZE_ROUTES, *USERINFO_ROUTES, *DISCOVERY_ROUTES, *CLIENT_ROUTES]
