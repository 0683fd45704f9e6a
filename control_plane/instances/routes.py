"""``POST /api/v1/instances/heartbeat``: org instances report in with their credential.

Checks run in this order, each before any work the next needs: the credential's shape (401
``invalid_credential``), the sender's failed attempts (429 ``rate_limited`` after
``FAILURES_PER_MINUTE`` bad credentials from one address), the credential itself (401), the
flood limit per instance (429, :mod:`control_plane.instances.gate`), the contract version the
body names (409 ``contract_version_unsupported``, :mod:`control_plane.contract.versions`;
nothing is recorded), the body (400), the body's
org against the credential's (403 ``org_mismatch``). Only authenticated attempts count against
an org's allowance: anyone who knows an org id could otherwise use it up with bad credentials
and keep the org's instance from registering. Replays answer 200 with
``accepted: false`` (see :mod:`control_plane.instances.heartbeat`). With the ``redis``
heartbeat transport the answer to an instance that reaches its Redis says ``via: redis`` and is
also left in Redis for it (see :mod:`control_plane.instances.ingest`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.orm.exc import StaleDataError

from control_plane.audit_trail import record
from control_plane.auth import bearer_token
from control_plane.client_ip import client_ip
from control_plane.contract.versions import check_raw_heartbeat, negotiate
from control_plane.db.models import Instance, Org
from control_plane.deps import DB, RuntimeDep
from control_plane.instances.gate import HeartbeatGate
from control_plane.instances.heartbeat import (
    HeartbeatIn,
    HeartbeatProcessor,
    authenticate_instance,
    credential_org,
)
from control_plane.instances.ingest import publish_answer, uses_redis
from control_plane.logs import bind_request
from control_plane.ratelimit import Limit
from control_plane.runtime import WAKE_RECONCILER, Runtime
from orgplane_wire.contract import HEARTBEAT_PATH, HeartbeatAnswer
from orgplane_wire.problems import Forbidden, Unauthenticated

#: Bad credentials accepted from one address per minute before 429.
FAILURES_PER_MINUTE = 30
BAD_CREDENTIALS = Limit("heartbeat-failures", FAILURES_PER_MINUTE, 60)


async def instance_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Count the attempt and authenticate the instance credential, before the body is read."""
    runtime: Runtime = connection.app.state.runtime
    credential = bearer_token(connection) or ""  # type: ignore[arg-type]
    source = client_ip(connection)
    await runtime.throttle.check(BAD_CREDENTIALS, source)
    org_id = credential_org(credential)
    if org_id is None:
        await runtime.throttle.count(BAD_CREDENTIALS, source)
        raise Unauthenticated("Send the instance credential.", code="invalid_credential")
    async with runtime.readers() as db:
        try:
            instance, org = await authenticate_instance(db, credential)
        except Unauthenticated:
            await runtime.throttle.count(BAD_CREDENTIALS, source)
            raise
    gate = await HeartbeatGate.open(runtime, org_id=org_id)
    gate.admit()
    await gate.save()  # counted even if the body turns out bad
    if isinstance(connection, Request):  # before validation: a newer body may not validate
        check_raw_heartbeat(await connection.body())
    # Loaded once here; the handler reuses them (a quiet heartbeat makes no other query).
    connection.state.instance, connection.state.instance_org = instance, org
    connection.state.heartbeat_gate = gate
    bind_request(org_id=instance.org_id)


@post(HEARTBEAT_PATH, guards=[instance_guard], status_code=HTTP_200_OK, tags=["instances"])
async def heartbeat(
    request: Request[Any, Any, Any], data: JSONBody[HeartbeatIn], db: DB, runtime: RuntimeDep
) -> HeartbeatAnswer:
    """Record an org instance's heartbeat and answer the configuration it must run with."""
    instance: Instance = request.state.instance
    org: Org = request.state.instance_org
    gate: HeartbeatGate = request.state.heartbeat_gate
    if data.org_id != org.id:
        record(
            db,
            action="instance.heartbeat",
            outcome="failure",
            org_id=org.id,
            target_type="instance",
            target_id=org.id,
            claimed_org=data.org_id[:64],
            ip=client_ip(request),
        )
        await db.commit()
        raise Forbidden("The heartbeat names another org.", code="org_mismatch")
    speaks = negotiate(data.contract_version)  # the guard refused an unsupported one
    processor = HeartbeatProcessor(runtime, db)
    try:
        outcome = await processor.process(instance, data, gate)
    except StaleDataError:  # the row was deleted between the guard and the write
        raise Unauthenticated(
            "The instance credential is not valid.", code="invalid_credential"
        ) from None
    if outcome.accepted and not outcome.wrote:
        await gate.save()  # the row does not hold this seq: the gate must
    if outcome.new_run:
        request.state[WAKE_RECONCILER] = True
    via_redis = outcome.accepted and data.redis_ok and uses_redis(runtime)
    # An instance that does not report its config_version (the contract allows it) gets the
    # org's branding with the beats that write anyway, not with every beat: an unchanged beat
    # stays one indexed read.
    if data.config_version is None:
        behind = outcome.wrote
    else:
        behind = data.config_version != org.config_version
    answer = await processor.answer(
        org, outcome, contract_version=speaks, via_redis=via_redis, behind=behind
    )
    if via_redis and not await publish_answer(runtime, org.id, answer):
        del answer["via"]  # the instance would find no answer in Redis: keep it posting
    return answer


ROUTES = [heartbeat]
