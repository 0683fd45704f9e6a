"""Starting the provisioner and the reconciler with the app, and stopping them with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import structlog
from litestar import Litestar, Request
from redis.exceptions import RedisError

from control_plane.instances.ingest import reading
from control_plane.reconciler.loop import Reconciler
from control_plane.reconciler.reconcile import Context
from control_plane.reconciler.spec import provisioner_options
from control_plane.redis_acl import OPEN_DEFAULT_USER, default_user_open
from control_plane.runtime import WAKE_RECONCILER, ConfigurationError, Runtime
from provisioners.registry import create_provisioner

log = structlog.get_logger("orgplane.reconciler")


def _redis_admin(runtime: Runtime) -> Any:
    store = runtime.settings.store
    if not (store.redis_url and store.redis_org_users):
        return None
    from redis.asyncio import Redis

    return Redis.from_url(store.redis_url)


async def _refuse_open_default_user(runtime: Runtime, redis_admin: Any) -> None:
    """Per-org Redis users confine nothing while Redis's ``default`` user is open: production
    refuses to start (embedded mode warns). A Redis that cannot be reached is not refused here
    (``/readyz`` reports it, and the check, until it answers)."""
    try:
        is_open = await default_user_open(redis_admin)
    except RedisError as exc:
        log.warning("redis default user not checked", exc_type=type(exc).__name__)
        return
    if not is_open:
        return
    if runtime.settings.server.mode == "production":
        raise ConfigurationError(OPEN_DEFAULT_USER)
    log.warning("redis default user is open", detail=OPEN_DEFAULT_USER)


@contextlib.asynccontextmanager
async def provisioning(app: Litestar, runtime: Runtime) -> AsyncIterator[None]:
    """Load the configured provisioner; run the reconciler loop if enabled."""
    settings = runtime.settings.provisioning
    redis_admin = _redis_admin(runtime)
    if redis_admin is not None:
        try:
            await _refuse_open_default_user(runtime, redis_admin)
        except ConfigurationError:
            await redis_admin.aclose()
            raise
    provisioner = create_provisioner(settings.provisioner, options=provisioner_options(runtime))
    runtime.provisioner = provisioner
    runtime.redis_admin = redis_admin
    task: asyncio.Task[None] | None = None
    if settings.reconciler_enabled:
        reconciler = Reconciler(
            Context(
                runtime,
                provisioner,
                redis_admin,
                redis_host=runtime.settings.store.instance_redis_host,
            )
        )
        app.state.reconciler = reconciler
        task = asyncio.create_task(reconciler.run_forever(), name="orgplane-reconciler")
        log.info("reconciler started", provisioner=settings.provisioner, replica=runtime.replica_id)
    try:
        async with reading(runtime):
            yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=10)
        await provisioner.close()
        if redis_admin is not None:
            runtime.redis_admin = None
            await redis_admin.aclose()


async def wake_after_org_write(request: Request[Any, Any, Any]) -> None:
    """``after_response`` hook: a write under /api/v1/orgs starts a reconcile pass now, and so
    does the first heartbeat of an instance's run (it frees a provisioning slot that a waiting
    org can take, and turns its own org ``running``)."""
    if not request.state.get(WAKE_RECONCILER):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if not urlsplit(str(request.url)).path.startswith("/api/v1/orgs"):
            return
    reconciler = getattr(request.app.state, "reconciler", None)
    if reconciler is not None:
        reconciler.wake()
