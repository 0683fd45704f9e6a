"""The org instance application: all wiring in one place.

``create_app(config)`` builds a Litestar app from an :class:`InstanceConfig`; the lifespan opens
the database (applying migrations), connects Redis when configured, prefetches the JWKS and
starts the heartbeat loop, whose first beat goes out once the app is ready.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from litestar import Litestar, get
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore

from org_instance import events
from org_instance.access_log import AccessLog
from org_instance.auth import UNAUTHENTICATED, HostCheck, TokenAuth
from org_instance.backup import routes as backup_routes
from org_instance.backup.gate import MaintenanceGate
from org_instance.backup.restore import recover as recover_interrupted_restore
from org_instance.browser_auth import ROUTES as BROWSER_ROUTES
from org_instance.browser_sessions import BrowserSessions
from org_instance.config import InstanceConfig
from org_instance.crypto import SettingsBox
from org_instance.db import Database
from org_instance.deps import Instance, provide_caller, provide_instance
from org_instance.features import gated
from org_instance.heartbeat import HeartbeatSender
from org_instance.metrics import InstanceMetrics, MetricsMiddleware, metrics_endpoint
from org_instance.openapi import document as document_errors_and_security
from org_instance.openapi import openapi_config
from org_instance.revocations import Revocations
from org_instance.runtime import InstanceRuntime, LimitsState, RateLimiter
from org_instance.scopes import requires_scope
from org_instance.verifier import JWKSVerifier
from org_instance.workspace import files, runners, sessions, settings, usage
from org_instance.workspace.files import stored_bytes
from orgplane_wire.inbound import BoundedJSONRequest, HostSyntaxCheck
from orgplane_wire.problem_handlers import ProblemAnswers
from orgplane_wire.problems import Unavailable
from orgplane_wire.ws_refusals import CloseCodesAfterAccept

log = structlog.get_logger("orgplane.instance")

JSON_BODY_LIMIT = 1_048_576
#: How the instance answers errors: a bare 401 is ``invalid_token``, a Litestar error is told by
#: its title only, and the challenge is the one :class:`~orgplane_wire.problems.Unauthorized` sets.
ANSWERS = ProblemAnswers(
    unauthenticated_code="invalid_token", tell_http_detail=False, name_fields=False
)


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(instance: Instance) -> dict[str, Any]:
    """Readiness: the database and Redis (when configured) answer; 503 otherwise."""
    db_ok, redis_ok = await instance.db.ping(), await instance.redis_ok()
    if not (db_ok and redis_ok):
        raise Unavailable("Not ready.", code="not_ready", db_ok=db_ok, redis_ok=redis_ok)
    return {"status": "ready", "db_ok": True, "redis_ok": True}


def _connect_redis(config: InstanceConfig) -> tuple[Any, Store]:
    """A Redis client for the org's ACL user and a store in the org's namespace."""
    from litestar.stores.redis import RedisStore
    from redis.asyncio import Redis

    client = Redis.from_url(config.redis_url, socket_connect_timeout=2, socket_timeout=5)
    return client, RedisStore(client, namespace=config.namespace)


def build_runtime(config: InstanceConfig, *, http: httpx.AsyncClient) -> InstanceRuntime:
    """The runtime of an instance (nothing is opened yet)."""
    redis, store = _connect_redis(config) if config.redis_url else (None, MemoryStore())
    metrics = InstanceMetrics(config.data_dir / "instance.db")
    return InstanceRuntime(
        config=config,
        db=Database(config.data_dir / "instance.db"),
        verifier=JWKSVerifier(
            jwks_url=config.jwks_url,
            issuer=config.issuer,
            audience=config.audience,
            org_id=config.org_id,
            http=http,
        ),
        box=SettingsBox(credential=config.instance_credential, org_id=config.org_id),
        store=store,
        limiter=RateLimiter(store),
        limits=LimitsState(config.limits),
        channels=events.make_channels(redis=redis),
        redis=redis,
        revocations=Revocations(org_id=config.org_id, redis=redis),
        metrics=metrics,
    )


def _lifespan(runtime: InstanceRuntime, http: httpx.AsyncClient, owns_http: bool) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # A restore cut short (crash, kill) is rolled back before the database opens.
        await asyncio.to_thread(recover_interrupted_restore, runtime.config.data_dir)
        await runtime.db.open()
        runtime.usage.storage_bytes = await asyncio.to_thread(stored_bytes, runtime.files_dir)
        prefetch = asyncio.create_task(runtime.verifier.refresh())
        beats: asyncio.Task[None] | None = None
        if runtime.config.control_plane_url:
            runtime.heartbeat = HeartbeatSender(runtime=runtime, http=http)
            beats = asyncio.create_task(runtime.heartbeat.run())
        follow = asyncio.create_task(runtime.revocations.run()) if runtime.redis else None
        log.info("instance ready", instance_id=runtime.config.instance_id)
        try:
            yield
        finally:
            tasks = [t for t in (beats, prefetch, follow) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.verifier.aclose()
            if owns_http:
                await http.aclose()
            if runtime.redis is not None:
                await runtime.redis.aclose()
            await runtime.db.close()

    return lifespan


def _tls_verification(config: InstanceConfig) -> ssl.SSLContext | bool:
    """Certificate verification for the control plane's URLs.

    For https, the default CA bundle. For http (the usual in-cluster address) no bundle is
    needed: an empty but verifying context saves parsing ~150 CA certificates at every start,
    and would refuse, never accept, an https peer.
    """
    if any(url.startswith("https:") for url in (config.control_plane_url, config.jwks_url)):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def create_app(config: InstanceConfig, *, http: httpx.AsyncClient | None = None) -> Litestar:
    """An instance app for ``config``; ``http`` reaches the control plane (tests inject one)."""
    owns_http = http is None
    client = http or httpx.AsyncClient(
        timeout=5.0, follow_redirects=False, verify=_tls_verification(config)
    )
    runtime = build_runtime(config, http=client)
    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics_endpoint,
            gated("chat", sessions.ROUTES),
            *settings.ROUTES,
            *runners.ROUTES,
            gated("files", files.ROUTES),
            *usage.ROUTES,
            *events.ROUTES,
            *backup_routes.ROUTES,
            *BROWSER_ROUTES,
        ],
        dependencies={
            "instance": Provide(provide_instance),
            "caller": Provide(provide_caller),
        },
        middleware=[MetricsMiddleware, DefineMiddleware(TokenAuth, exclude=UNAUTHENTICATED)],
        guards=[requires_scope],
        plugins=[runtime.channels],
        lifespan=[_lifespan(runtime, client, owns_http)],
        exception_handlers=ANSWERS.handlers(),
        request_max_body_size=JSON_BODY_LIMIT,
        request_class=BoundedJSONRequest,
        openapi_config=openapi_config(config.version),
        logging_config=None,
        debug=False,
    )
    document_errors_and_security(app.routes)
    app.state.instance = runtime
    app.state.metrics = runtime.metrics
    app.state.browser_sessions = BrowserSessions()
    app.state.browser_http = client
    runtime.revocations.on_key_retired = runtime.verifier.retire
    runtime.revocations.on_redis_error = lambda: runtime.metrics.redis_error("revocations")
    # Before routing, so an unknown path on a wrong host is refused too (not answered 404).
    app.state.maintenance = MaintenanceGate(app.asgi_handler)
    app.asgi_handler = AccessLog(
        HostSyntaxCheck(
            CloseCodesAfterAccept(HostCheck(app.state.maintenance, allowed=config.allowed_hosts))
        )
    )
    return app
