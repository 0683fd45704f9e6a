"""Acting on an org's instance: restart, stop, start, cancel, wake, hibernate, redeploy.

The API (``instances/control_routes.py``) and the org page's buttons (``ui/org_actions.py``)
both call :func:`act_on_instance`; they wake this process's reconciler afterwards (:func:`nudge`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.audit_trail import record
from control_plane.db.models import Instance, Org, utcnow
from control_plane.db.phases import SERVING, DesiredState, OrgPhase
from control_plane.instances.leases import claim, release
from control_plane.orgs.access import OrgAccess
from control_plane.orgs.events import add_event
from control_plane.orgs.images import checked_image, org_image
from control_plane.routing.hibernation import apply_action
from control_plane.runtime import Runtime
from orgplane_wire.problems import BadRequest, Conflict, Forbidden, ProblemError
from provisioners.errors import ProvisionerError

Action = Literal["restart", "stop", "start", "redeploy", "cancel", "wake", "hibernate"]


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    """An action on the org's instance; ``image`` only for redeploy."""

    action: Action
    image: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | None = None


def nudge(app_state: Any) -> None:
    """Wake this process's reconciler (if it runs one) to act on a change now."""
    reconciler = getattr(app_state, "reconciler", None)
    if reconciler is not None:
        reconciler.wake()


async def act_on_instance(
    db: AsyncSession, runtime: Runtime, actor: Actor, access: OrgAccess, data: ActionBody
) -> Org:
    """restart, stop, start, cancel a pending operation, wake a hibernated org (org admins);
    hibernate a running one, or redeploy it (maybe with an allowed image: platform admins).
    Audited, on the org's timeline, committed."""
    if data.action == "redeploy" or data.image is not None:
        await _check_redeploy(db, runtime, actor, access.org, data)
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
        apply_action(org, action=data.action, platform_admin=actor.principal.is_platform_admin)
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
        message=f"requested by {actor.user.email}",
    )
    record(
        db,
        action=f"instance.{data.action}",
        actor=actor.user,
        org_id=org.id,
        target_type="instance",
        target_id=org.id,
        ip=actor.ip,
        image=data.image or "",
    )
    await db.commit()
    return org


async def _check_redeploy(
    db: AsyncSession, runtime: Runtime, actor: Actor, org: Org, data: ActionBody
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
        if not actor.principal.is_platform_admin:
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
            actor=actor.user,
            org_id=org.id,
            target_type="instance",
            target_id=org.id,
            ip=actor.ip,
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
