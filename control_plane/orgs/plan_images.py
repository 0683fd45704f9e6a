"""Plan images: which instance image a plan's orgs run (platform admins only).

``PUT /api/v1/plans/{plan}/image`` sets it, ``DELETE`` goes back to ``ORGPLANE_INSTANCE_IMAGE``,
``GET`` reads it with the contract versions it speaks. The image must be on the allow-list and
speak a contract version this control plane supports (:func:`checked_image`: 400
``invalid_image``, 403 ``image_not_allowed``, 409 ``image_contract_unsupported``); anyone else,
org admins included, gets 403 ``platform_admin_required``. Every change and every refusal is
audited. An org's own image (a platform admin's ``redeploy`` with ``image``) outranks its
plan's. A plan's orgs take the new image when their instance is next deployed (created,
redeployed, or started again after a stop); a running instance is not restarted for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from control_plane.audit_trail import record
from control_plane.auth import Principal, require_platform_admin
from control_plane.client_ip import client_ip
from control_plane.db.models import PlanImage, utcnow
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.features.plans import plan_named
from control_plane.orgs.images import checked_image, image_contracts
from orgplane_wire.problems import ProblemError


class PlanImageBody(msgspec.Struct, forbid_unknown_fields=True):
    """The image a plan's orgs run."""

    image: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class PlanImageOut(msgspec.Struct):
    plan: str
    image: str
    #: ``plan``: set for this plan; ``default``: ``ORGPLANE_INSTANCE_IMAGE``.
    source: Literal["plan", "default"]
    contract_versions: list[int]


def _out(plan: str, row: PlanImage | None, runtime: Any) -> PlanImageOut:
    settings = runtime.settings.provisioning
    image = row.image if row is not None else settings.instance_image
    return PlanImageOut(
        plan=plan,
        image=image,
        source="plan" if row is not None else "default",
        contract_versions=sorted(image_contracts(image, settings) or ()),
    )


@asynccontextmanager
async def _audit_refusal(
    request: Request[Any, Any, Any], db: DB, principal: Principal, action: str, image: str
) -> AsyncIterator[None]:
    """Run a write's checks; a refusal is audited (``outcome: denied``) in its own
    transaction (nothing else was written yet), then answered."""
    try:
        yield
    except ProblemError as refused:
        record(
            db,
            action=action,
            outcome="denied",
            actor=principal.user,
            target_type="plan",
            target_id=str(request.path_params["plan"])[:40],
            ip=client_ip(request),
            code=refused.code,
            image=image[:300],
        )
        await db.commit()
        raise


@get("/api/v1/plans/{plan:str}/image", tags=["plans"])
async def read_plan_image(
    plan: FromPath[str], principal: Caller, db: DB, runtime: RuntimeDep
) -> PlanImageOut:
    """The image a plan's orgs run (platform admins)."""
    require_platform_admin(principal)
    plan_named(plan)
    return _out(plan, await db.get(PlanImage, plan), runtime)


@put("/api/v1/plans/{plan:str}/image", tags=["plans"])
async def put_plan_image(
    request: Request[Any, Any, Any],
    plan: FromPath[str],
    data: JSONBody[PlanImageBody],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> PlanImageOut:
    """Set the image of a plan's orgs (platform admins; an allowed image that speaks a
    supported contract version)."""
    async with _audit_refusal(request, db, principal, "plan.image_set", data.image):
        require_platform_admin(principal)
        plan_named(plan)
        checked_image(data.image, runtime.settings.provisioning)
    row = await db.get(PlanImage, plan) or PlanImage(plan=plan, image=data.image)
    row.image, row.updated_at = data.image, utcnow()
    db.add(row)
    record(
        db,
        action="plan.image_set",
        actor=principal.user,
        target_type="plan",
        target_id=plan,
        ip=client_ip(request),
        image=data.image,
    )
    await db.commit()
    return _out(plan, row, runtime)


@delete("/api/v1/plans/{plan:str}/image", tags=["plans"], status_code=HTTP_204_NO_CONTENT)
async def delete_plan_image(
    request: Request[Any, Any, Any], plan: FromPath[str], principal: Caller, db: DB
) -> None:
    """Back to the default image for the plan's orgs (platform admins)."""
    async with _audit_refusal(request, db, principal, "plan.image_cleared", ""):
        require_platform_admin(principal)
        plan_named(plan)
    row = await db.get(PlanImage, plan)
    if row is not None:
        await db.delete(row)
    record(
        db,
        action="plan.image_cleared",
        actor=principal.user,
        target_type="plan",
        target_id=plan,
        ip=client_ip(request),
    )
    await db.commit()


ROUTES = [read_plan_image, put_plan_image, delete_plan_image]
