"""Instance API: what an org's instance is doing and why, and the actions on it.

Actions that change desired state (stop, start, redeploy, cancel) only write the org's row and
bump its generation; the reconciler does the work, so nothing races it. Restart is an action on
the running instance: it takes the org's lease first and answers 409 ``instance_busy`` while the
reconciler holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from control_plane.actor import ActorDep
from control_plane.db.models import Instance, Org
from control_plane.deps import DB, RuntimeDep
from control_plane.instances.actions import ActionBody, act_on_instance, nudge
from control_plane.orgs.events import timeline
from control_plane.orgs.guards import OrgAccessDep


class EventOut(msgspec.Struct):
    at: datetime
    kind: str
    message: str


class InstanceOut(msgspec.Struct):
    org_id: str
    phase: str
    reason: str
    desired_state: str
    health: str
    endpoint: str
    provisioner: str
    image: str
    #: The org's own image (platform admins choose it); empty: its plan's, or the default.
    pinned_image: str
    version: str
    #: The contract version the instance speaks (negotiated at its last heartbeat).
    contract_version: int | None
    last_heartbeat_at: datetime | None
    started_at: datetime | None
    last_active_at: datetime | None
    hibernated_at: datetime | None
    generation: int
    observed_generation: int
    attempts: int
    last_error: str
    events: list[EventOut]


def _view(org: Org, instance: Instance | None, events: list[Any]) -> InstanceOut:
    inst = instance or Instance(org_id=org.id, provisioner="")
    return InstanceOut(
        org_id=org.id,
        phase=org.phase,
        reason=org.reason,
        desired_state=org.desired_state,
        health=inst.health,
        endpoint=inst.endpoint,
        provisioner=inst.provisioner,
        image=inst.image,
        pinned_image=inst.pinned_image,
        version=inst.version,
        contract_version=inst.contract_version,
        last_heartbeat_at=inst.last_heartbeat_at,
        started_at=inst.started_at,
        last_active_at=inst.last_active_at,
        hibernated_at=org.hibernated_at,
        generation=org.generation,
        observed_generation=inst.observed_generation,
        attempts=inst.attempts,
        last_error=inst.last_error,
        events=[EventOut(e.at, e.kind, e.message) for e in events],
    )


@get("/api/v1/orgs/{org_ref:str}/instance", tags=["instances"])
async def get_instance(access: OrgAccessDep, db: DB) -> InstanceOut:
    """Phase, reason, endpoint, last heartbeat and the event timeline of the org's instance."""
    org = access.org
    return _view(org, await db.get(Instance, org.id), await timeline(db, org_id=org.id))


@post(
    "/api/v1/orgs/{org_ref:str}/instance/actions", status_code=HTTP_202_ACCEPTED, tags=["instances"]
)
async def instance_action(
    request: Request[Any, Any, Any],
    data: JSONBody[ActionBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> InstanceOut:
    """restart, stop, start, cancel a pending operation, wake a hibernated org (org admins);
    hibernate a running one, or redeploy it (maybe with an allowed image: platform admins).
    The role depends on the action, so the action's service checks it."""
    org = await act_on_instance(db, runtime, actor, access, data)
    nudge(request.app.state)
    return _view(org, await db.get(Instance, org.id), await timeline(db, org_id=org.id))


ROUTES = [get_instance, instance_action]
