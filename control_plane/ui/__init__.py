"""The admin UI: server-rendered pages under ``/ui``, usable without JavaScript.

:func:`ui_setup` gives ``create_app`` the UI's routes (with their own session dependency,
security headers and error pages), the Jinja template config (autoescaping on) and the CSRF
config, which protects every form but leaves Bearer API clients alone (bound to the sign-in,
with an ``Origin`` check: :mod:`control_plane.ui.csrf`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from control_plane.routing.org_urls import org_origin
from control_plane.settings import Settings
from control_plane.ui import (
    admin_pages,
    auth_pages,
    branding_pages,
    dashboard,
    feature_pages,
    member_pages,
    mfa_pages,
    org_actions,
    org_pages,
    passkey_login,
    passkey_pages,
    recovery_pages,
    sso_pages,
    switcher,
)
from control_plane.ui.csrf import (
    CSRF_COOKIE,
    CSRF_PATH,
    CrossSiteRefused,
    csrf_secret,
    on_cross_site,
    same_origin,
)
from control_plane.ui.present import FILTERS
from control_plane.ui.session import (
    LoginRequired,
    UIResponseMiddleware,
    on_login_required,
    provide_viewer,
    provide_viewer_org_access,
)
from control_plane.words import tenant_words
from orgplane_wire.problems import ProblemError

HERE = Path(__file__).parent
#: Paths the CSRF check skips: Bearer/JSON clients, the token endpoint, probes.
CSRF_EXEMPT = [
    r"^/api/",
    r"^/oauth/",
    r"^/\.well-known/",
    r"^/healthz$",
    r"^/readyz$",
    r"^/metrics$",
    r"^/_orgplane/wake(/|$)",  # no cookies, nothing changed but starting a hibernated org
]


@dataclass(frozen=True)
class UISetup:
    """What ``create_app`` needs to serve the UI."""

    route_handlers: list[Any]
    template_config: TemplateConfig[JinjaTemplateEngine]
    csrf_config: CSRFConfig


@get("/", include_in_schema=False, sync_to_thread=False)
def root() -> Redirect:
    """The UI is the front page."""
    return Redirect("/ui/", status_code=303)


def on_problem_page(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    """A problem in a UI request is an HTML page, not JSON."""
    return Template(
        template_name="error.html",
        status_code=exc.status,
        context={"status": exc.status, "message": exc.detail, "me": None},
    )


def _template_config(settings: Settings) -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
    )
    environment.filters.update(FILTERS)
    words = tenant_words(settings)  # the platform's word for an org
    environment.globals["tenant"] = words
    environment.filters["reword"] = words.reword  # messages written with "org"
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))


def _csrf_config(settings: Settings) -> CSRFConfig:
    # Double-submit, with the cookie bound to the sign-in once there is one (ui/csrf.py).
    return CSRFConfig(
        secret=csrf_secret(settings),
        cookie_name=CSRF_COOKIE,
        cookie_path=CSRF_PATH,
        cookie_secure=settings.secure_cookies,
        cookie_httponly=True,
        cookie_samesite="lax",
        exclude=CSRF_EXEMPT,
    )


def ui_setup(settings: Settings, *, extra_pages: Sequence[Any] = ()) -> UISetup:
    """The UI's routes, templates and CSRF protection for ``settings``; ``extra_pages`` are
    other features' pages served under ``/ui`` with the UI's session (the OpenID provider's
    sign-in and consent pages)."""
    middleware = UIResponseMiddleware(org_origins=org_origin(settings, "*"))
    pages = Router(
        path="/ui",
        route_handlers=[
            *auth_pages.ROUTES,
            *sso_pages.ROUTES,
            *mfa_pages.ROUTES,
            *passkey_pages.ROUTES,
            *passkey_login.ROUTES,
            *recovery_pages.ROUTES,
            *dashboard.ROUTES,
            *org_pages.ROUTES,
            *org_actions.ROUTES,
            *branding_pages.ROUTES,
            *member_pages.ROUTES,
            *switcher.ROUTES,
            *admin_pages.ROUTES,
            *feature_pages.ROUTES,
            *extra_pages,
        ],
        dependencies={
            "viewer": Provide(provide_viewer),
            "access": Provide(provide_viewer_org_access),
        },
        guards=[same_origin],
        exception_handlers={
            LoginRequired: on_login_required,
            ProblemError: on_problem_page,
            CrossSiteRefused: on_cross_site,
        },
        middleware=[middleware],
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/ui/static",
        directories=[HERE / "static"],
        middleware=[middleware],
        include_in_schema=False,
    )
    return UISetup(
        route_handlers=[root, pages, static],
        template_config=_template_config(settings),
        csrf_config=_csrf_config(settings),
    )
