"""Instance API: what an org's instance is doing and why, and the actions on it.

Actions that change desired state (stop, start, redeploy, cancel) only write the org's row and
bump its generation; the reconciler does the work, so nothing races it. Restart is an action on
the running instance: it takes the org's lease first and answers 409 ``instance_busy`` while the
reconciler holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit.record import record
from control_plane.auth import Principal
from control_plane.db.models import Instance, Org, utcnow
from control_plane.db.phases import SERVING, DesiredState, OrgPhase
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.errors import BadRequest, Conflict, Forbidden, ProblemError
from control_plane.identity.client_ip import client_ip
from control_plane.orgs.access import org_access
from control_plane.reconciler.events import add_event, timeline
from control_plane.reconciler.hibernation import apply_action
from control_plane.reconciler.images import checked_image, org_image
from control_plane.reconciler.leases import claim, release
from control_plane.runtime import Runtime
from provisioners.errors import ProvisionerError

Action = Literal["restart", "stop", "start", "redeploy", "cancel", "wake", "hibernate"]


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    """An action on the org's instance; ``image`` only for redeploy."""

    action: Action
    image: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | None = None


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
async def get_instance(org_ref: FromPath[str], principal: Caller, db: DB) -> InstanceOut:
    """Phase, reason, endpoint, last heartbeat and the event timeline of the org's instance."""
    access = await org_access(db, principal, org_ref)
    org = access.org
    return _view(org, await db.get(Instance, org.id), await timeline(db, org_id=org.id))


@post(
    "/api/v1/orgs/{org_ref:str}/instance/actions", status_code=HTTP_202_ACCEPTED, tags=["instances"]
)
async def instance_action(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    data: JSONBody[ActionBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> InstanceOut:
    """restart, stop, start, cancel a pending operation, wake a hibernated org (org admins);
    hibernate a running one, or redeploy it (maybe with an allowed image: platform admins)."""
    access = await org_access(db, principal, org_ref)
    if data.action == "redeploy" or data.image is not None:
        await _check_redeploy(request, db, runtime, principal, access.org, data)
    else:
        access.require("admin", to="act on the instance")
    org = access.org
    instance = await db.get(Instance, org.id)
    if data.action == "restart":
        await _restart_now(runtime, db, org, instance)
    elif data.action in ("stop", "start"):
        org.desired_state = (
            DesiredState.STOPPED if data.action == "stop" else DesiredState.RUNNING
        ).value
        org.hibernated_at = None if data.action == "start" else org.hibernated_at
    elif data.action in ("wake", "hibernate"):
        apply_action(org, action=data.action, platform_admin=principal.is_platform_admin)
    elif data.action == "redeploy":
        if instance is None:
            raise Conflict("The org has no instance yet.", code="instance_not_provisioned")
        # data.image passed _check_redeploy: a platform admin chose it from the allow-list.
        # Without one the org follows its plan's image, or the default.
        instance.pinned_image = data.image or ""
        instance.image = await org_image(
            db, org=org, instance=instance, settings=runtime.settings.provisioning
        )
        db.add(instance)
    elif data.action == "cancel":
        if org.phase not in (
            OrgPhase.PENDING,
            OrgPhase.PROVISIONING,
            OrgPhase.STARTING,
            OrgPhase.FAILED,
        ):
            raise Conflict("There is no pending operation to cancel.", code="nothing_to_cancel")
        org.desired_state = DesiredState.STOPPED.value
    if data.action != "restart":
        org.generation += 1
        org.updated_at = utcnow()
        db.add(org)
    add_event(
        db,
        org_id=org.id,
        kind=f"action.{data.action}",
        message=f"requested by {principal.user.email}",
    )
    record(
        db,
        action=f"instance.{data.action}",
        actor=principal.user,
        org_id=org.id,
        target_type="instance",
        target_id=org.id,
        ip=client_ip(request),
        image=data.image or "",
    )
    await db.commit()
    reconciler = getattr(request.app.state, "reconciler", None)
    if reconciler is not None:
        reconciler.wake()
    return _view(org, await db.get(Instance, org.id), await timeline(db, org_id=org.id))


async def _check_redeploy(
    request: Request[Any, Any, Any],
    db: Any,
    runtime: RuntimeDep,
    principal: Principal,
    org: Org,
    data: ActionBody,
) -> None:
    """Only platform admins redeploy, and only to an allowed image: the image is code the
    platform runs with the org's credentials. A refusal is audited (``outcome: denied``) in its
    own transaction, then answered 403 ``platform_admin_required`` / ``image_not_allowed``,
    400 ``invalid_image`` (``image`` only goes with ``redeploy``) or 409
    ``image_contract_unsupported`` (also an ``image.refused`` event on the org's timeline)."""
    try:
        if data.action != "redeploy":
            raise BadRequest(
                "An image goes only with the redeploy action.", code="invalid_image", field="image"
            )
        if not principal.is_platform_admin:
            raise Forbidden(
                "Only platform admins redeploy an org's instance.", code="platform_admin_required"
            )
        if data.image is not None:
            checked_image(data.image, runtime.settings.provisioning)
    except ProblemError as refused:
        # Nothing was written yet in this transaction: the refusal is all it commits.
        record(
            db,
            action=f"instance.{data.action}",
            outcome="denied",
            actor=principal.user,
            org_id=org.id,
            target_type="instance",
            target_id=org.id,
            ip=client_ip(request),
            code=refused.code,
            image=(data.image or "")[:300],
        )
        if refused.code == "image_contract_unsupported":  # the org's people should see why
            add_event(db, org_id=org.id, kind="image.refused", message=refused.detail)
        await db.commit()
        raise


async def _restart_now(
    runtime: Runtime, db: AsyncSession, org: Org, instance: Instance | None
) -> None:
    provisioner = runtime.provisioner
    if instance is None or provisioner is None or org.phase not in SERVING:
        raise Conflict("Only a running instance can be restarted.", code="instance_not_running")
    owner = f"api-{runtime.replica_id}"
    if not await claim(db, org_id=org.id, owner=owner, seconds=60):
        raise Conflict(
            "The reconciler is working on this org; try again shortly.", code="instance_busy"
        )
    try:
        await provisioner.restart(org_id=org.id)
    except ProvisionerError:
        await provisioner.remove(org_id=org.id, keep_data=True)
    finally:
        await release(db, org_id=org.id, owner=owner)


ROUTES = [get_instance, instance_action]
