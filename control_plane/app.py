"""The control-plane application: all wiring in one place.

``create_app`` builds a Litestar app from settings; every feature contributes its route
handlers through its ``routes`` module, and the runtime (database, keys, stores) is created in
the lifespan and handed to handlers by dependency injection.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import structlog
from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane import __version__
from control_plane.actor import provide_actor
from control_plane.audit.routes import ROUTES as AUDIT_ROUTES
from control_plane.auth import provide_principal
from control_plane.backups.key_routes import ROUTES as BACKUP_KEY_ROUTES
from control_plane.backups.routes import ROUTES as BACKUP_ROUTES
from control_plane.backups.transfer import ROUTES as TRANSFER_ROUTES
from control_plane.bootstrap import prepare_database
from control_plane.branding.routes import ROUTES as BRANDING_ROUTES
from control_plane.capacity.routes import ROUTES as POOL_ROUTES
from control_plane.db.engine import private_sqlite_files
from control_plane.db.request_sessions import CloseRequestSessions, track
from control_plane.error_handlers import EXCEPTION_HANDLERS
from control_plane.features.routes import ROUTES as FEATURE_ROUTES
from control_plane.fleet.rollout_routes import ROUTES as ROLLOUT_ROUTES
from control_plane.fleet.version_routes import ROUTES as VERSION_ROUTES
from control_plane.fleet.windows import ROUTES as WINDOW_ROUTES
from control_plane.identity.recovery_routes import ROUTES as RECOVERY_ROUTES
from control_plane.identity.routes import ROUTES as IDENTITY_ROUTES
from control_plane.instances.control_routes import ROUTES as LIFECYCLE_ROUTES
from control_plane.instances.log_routes import ROUTES as INSTANCE_LOG_ROUTES
from control_plane.instances.routes import ROUTES as INSTANCE_ROUTES
from control_plane.logs import RequestLogMiddleware, configure_logging
from control_plane.mail.sender import sending
from control_plane.members.routes import ROUTES as MEMBER_ROUTES
from control_plane.metrics import ROUTES as METRICS_ROUTES
from control_plane.metrics import HTTPMetricsMiddleware
from control_plane.oidc.authorize_pages import PAGE_ROUTES as AUTHORIZE_PAGES
from control_plane.oidc.routes import ROUTES as OIDC_ROUTES
from control_plane.openapi import components as openapi_components
from control_plane.openapi import document as document_errors_and_security
from control_plane.orgs.guards import provide_org_access
from control_plane.orgs.plan_images import ROUTES as PLAN_IMAGE_ROUTES
from control_plane.orgs.routes import ROUTES as ORG_ROUTES
from control_plane.process_metrics import ControlPlaneMetrics
from control_plane.reconciler.service import provisioning, wake_after_org_write
from control_plane.redis_acl import OPEN_DEFAULT_USER, default_user_open
from control_plane.routing.routes import ROUTES as ROUTING_ROUTES
from control_plane.routing.wake import ROUTES as WAKE_ROUTES
from control_plane.runtime import Runtime, RuntimeDep
from control_plane.security.headers import NoSniffMiddleware
from control_plane.settings import Settings, get_settings
from control_plane.sso.routes import ROUTES as SSO_ROUTES
from control_plane.tokens.routes import ROUTES as TOKEN_ROUTES
from control_plane.ui import ui_setup
from control_plane.usage.routes import ROUTES as USAGE_ROUTES
from control_plane.webhooks.routes import ROUTES as WEBHOOK_ROUTES
from control_plane.webhooks.worker import webhook_worker
from control_plane.wording import ROUTES as WORD_ROUTES
from control_plane.wording import describe_operations, reworded_schemes
from control_plane.words import tenant_words
from orgplane_wire.inbound import BoundedJSONRequest, HostSyntaxCheck
from orgplane_wire.problems import ProblemError
from orgplane_wire.ws_refusals import NoWebSockets

log = structlog.get_logger("orgplane.app")


async def provide_runtime(state: State) -> Runtime:
    """Dependency: this process's runtime."""
    runtime: Runtime = state.runtime
    return runtime


async def provide_db(
    request: Request[Any, Any, Any], runtime: RuntimeDep
) -> AsyncIterator[AsyncSession]:
    """Dependency: a database session for one request, rolled back if left uncommitted and
    closed when the request ends (:mod:`control_plane.db.request_sessions`)."""
    async with runtime.sessions() as session:
        track(request, session)
        yield session


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(db: NamedDependency[AsyncSession], runtime: RuntimeDep) -> dict[str, str]:
    """Readiness: the database answers and, in production with per-org Redis users, Redis's
    ``default`` user is not open (503 ``redis_default_user_open`` otherwise). ``mail`` says
    whether email can be sent (not a condition of readiness: a platform without SMTP serves,
    without mail)."""
    from sqlalchemy import text

    await db.exec(text("SELECT 1"))  # type: ignore[call-overload]
    admin = runtime.redis_admin
    if (
        admin is not None
        and runtime.settings.server.mode == "production"
        and await default_user_open(admin)
    ):
        raise ProblemError(OPEN_DEFAULT_USER, status=503, code="redis_default_user_open")
    mail = "smtp" if runtime.settings.mail.enabled else "not configured"
    return {"status": "ready", "mail": mail}


@contextmanager
def _startup_frozen() -> Iterator[None]:
    """Keep what start-up made out of the cyclic collector's way while the app serves.

    Modules, classes, routes and the runtime are ~150k objects that live as long as the
    process, and each full collection walked them all, stalling every request in flight: 120
    to 245 ms per full collection during ``benchmarks/bench_exchange.py``'s paced rounds, 9 to
    16 ms once frozen. ``gc.freeze`` moves them to the permanent generation, so collections scan
    only what requests create; ``gc.unfreeze`` on shutdown hands them back, so a process that
    builds apps one after another (the tests) does not keep the cycles of the old ones.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _lifespan(settings: Settings) -> Callable[[Litestar], Any]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = Runtime.build(settings)
        await prepare_database(runtime)
        private_sqlite_files(runtime.engine.url)
        app.state.runtime = runtime
        runtime.metrics = app.state.metrics
        try:
            async with provisioning(app, runtime), webhook_worker(runtime), sending(runtime):
                log.info("control plane ready", url=runtime.issuer, mode=settings.server.mode)
                with _startup_frozen():
                    yield
        finally:
            await runtime.close()

    return lifespan


def create_app(settings: Settings | None = None) -> Litestar:
    """A control-plane app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    configure_logging(fmt=settings.server.log_format, level=settings.server.log_level)
    ui = ui_setup(settings, extra_pages=AUTHORIZE_PAGES)
    words = tenant_words(settings)
    schemes = openapi_components()
    schemes.security_schemes = reworded_schemes(schemes.security_schemes or {}, words)
    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            *IDENTITY_ROUTES,
            *RECOVERY_ROUTES,
            *ORG_ROUTES,
            *BRANDING_ROUTES,
            *PLAN_IMAGE_ROUTES,
            *MEMBER_ROUTES,
            *AUDIT_ROUTES,
            *INSTANCE_ROUTES,
            *INSTANCE_LOG_ROUTES,
            *LIFECYCLE_ROUTES,
            *POOL_ROUTES,
            *TOKEN_ROUTES,
            *OIDC_ROUTES,
            *SSO_ROUTES,
            *ROUTING_ROUTES,
            *WAKE_ROUTES,
            *FEATURE_ROUTES,
            *USAGE_ROUTES,
            *BACKUP_ROUTES,
            *BACKUP_KEY_ROUTES,
            *TRANSFER_ROUTES,
            *METRICS_ROUTES,
            *WEBHOOK_ROUTES,
            *VERSION_ROUTES,
            *ROLLOUT_ROUTES,
            *WINDOW_ROUTES,
            *WORD_ROUTES,
            *ui.route_handlers,
        ],
        template_config=ui.template_config,
        csrf_config=ui.csrf_config,
        dependencies={
            "runtime": Provide(provide_runtime),
            "db": Provide(provide_db),
            "principal": Provide(provide_principal),
            "actor": Provide(provide_actor),
            "access": Provide(provide_org_access),
        },
        lifespan=[_lifespan(settings)],
        after_response=wake_after_org_write,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            CloseRequestSessions,
            DefineMiddleware(RequestLogMiddleware),
            HTTPMetricsMiddleware,
        ],
        request_class=BoundedJSONRequest,
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="orgplane control plane",
            description=f"{words.plural}, their members, instances and tokens. API paths and "
            "field names say `org` (`/api/v1/orgs`, `org_id`) whatever the platform calls them.",
            version=__version__,
            path="/api/schema",
            render_plugins=[ScalarRenderPlugin()],
            components=schemes,
        ),
        logging_config=None,
        debug=False,
    )
    app.state.metrics = ControlPlaneMetrics()
    document_errors_and_security(app.routes)
    describe_operations(app.routes, words)
    # Before routing and the error handlers, which build ``request.url`` from the Host; nosniff
    # around everything, so answers made before routing (400 invalid_host, 404, 405) carry it.
    inner: Any = NoWebSockets(app.asgi_handler)
    if settings.routing.embedded_routing:  # `orgplane up`: this port also answers org hosts
        from control_plane.routing.embedded import EmbeddedRouter

        router = EmbeddedRouter(inner, litestar=app, settings=settings)
        app.on_shutdown.append(router.aclose)
        inner = router
    app.asgi_handler = NoSniffMiddleware(HostSyntaxCheck(inner))
    return app
