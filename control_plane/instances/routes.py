"""``POST /api/v1/instances/heartbeat``: org instances report in with their credential.

Checks run in this order, each before any work the next needs: the credential (401
``invalid_credential``), the flood limit per instance (429 ``rate_limited``), the body (400),
the body's org against the credential's (403 ``org_mismatch``). Replays answer 200 with
``accepted: false`` (see :mod:`control_plane.instances.heartbeat`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from control_plane.audit.record import record
from control_plane.auth import bearer_token
from control_plane.db.models import Instance
from control_plane.deps import DB, RuntimeDep
from control_plane.errors import Forbidden, Unauthenticated
from control_plane.identity.ratelimit import WindowLimiter
from control_plane.instances.heartbeat import (
    HeartbeatIn,
    HeartbeatProcessor,
    authenticate_instance,
    credential_org,
)
from control_plane.logs import bind_request
from control_plane.runtime import Runtime
from org_instance.contract import HEARTBEAT_PATH, HeartbeatAnswer

#: Heartbeats (and failed attempts) accepted per instance per minute before 429: the default
#: interval sends 6; restarts and retries after an outage stay far below this.
HEARTBEATS_PER_MINUTE = 60


def flood_limiter(runtime: Runtime) -> WindowLimiter:
    """The per-instance heartbeat limiter of this runtime's store."""
    return WindowLimiter(
        runtime.rate_limits, limit=HEARTBEATS_PER_MINUTE, window=60, prefix="heartbeat"
    )


async def instance_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Authenticate the instance credential and count the attempt, before the body is read."""
    runtime: Runtime = connection.app.state.runtime
    credential = bearer_token(connection) or ""  # type: ignore[arg-type]
    org_id = credential_org(credential)
    if org_id is None:
        raise Unauthenticated("Send the instance credential.", code="invalid_credential")
    limiter = flood_limiter(runtime)
    await limiter.check(org_id)
    await limiter.hit(org_id)
    async with runtime.sessions() as db:
        instance = await authenticate_instance(db, credential)
    connection.state.instance_org_id = instance.org_id
    bind_request(org_id=instance.org_id)


@post(HEARTBEAT_PATH, guards=[instance_guard], status_code=HTTP_200_OK, tags=["instances"])
async def heartbeat(
    request: Request[Any, Any, Any], data: JSONBody[HeartbeatIn], db: DB, runtime: RuntimeDep
) -> HeartbeatAnswer:
    """Record an org instance's heartbeat and answer the configuration it must run with."""
    org_id: str = request.state.instance_org_id
    if data.org_id != org_id:
        record(
            db,
            action="instance.heartbeat",
            outcome="failure",
            org_id=org_id,
            target_type="instance",
            target_id=org_id,
            claimed_org=data.org_id[:64],
            ip=request.client.host if request.client else "",
        )
        await db.commit()
        raise Forbidden("The heartbeat names another org.", code="org_mismatch")
    instance = await db.get(Instance, org_id)  # again, in this request's session
    if instance is None:  # deleted between the guard and the handler
        raise Unauthenticated("The instance credential is not valid.", code="invalid_credential")
    processor = HeartbeatProcessor(runtime, db)
    outcome = await processor.process(instance, data)
    return await processor.answer(instance, outcome)


ROUTES = [heartbeat]
