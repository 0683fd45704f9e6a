"""The version registry's API (platform admins), each org's version, and the fleet view.

``POST /api/v1/versions`` registers a version (400 ``invalid_version_name``, the image checks:
400 ``invalid_image``, 403 ``image_not_allowed``, 409 ``image_contract_unsupported``; 409
``version_exists``); ``GET /api/v1/versions`` lists them with how many orgs run each;
``DELETE /api/v1/versions/{version}`` forgets an unused one (409 ``version_in_use``).
``GET /api/v1/fleet/versions`` counts live orgs per image run, registered or not.
``GET /api/v1/orgs/{org}/version`` says what the org runs (its members may read it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlmodel import col, select

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.auth import require_platform_admin
from control_plane.db.fleet_models import InstanceVersion
from control_plane.db.models import Instance
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.fleet.registry import (
    check_unused,
    find_version,
    fleet_counts,
    new_version,
    version_name,
)
from control_plane.orgs.guards import OrgAccessDep


class VersionBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    image: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    notes: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    schema_version: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0


class VersionOut(msgspec.Struct):
    id: str
    name: str
    image: str
    repository: str
    tag: str
    digest: str
    notes: str
    schema_version: int
    created_at: datetime
    orgs: int


class FleetRow(msgspec.Struct):
    image: str
    version: str | None
    orgs: int


class FleetOut(msgspec.Struct):
    items: list[FleetRow]


class OrgVersionOut(msgspec.Struct):
    org_id: str
    image: str
    version: str | None
    #: The image a platform admin pinned the org to (rollouts skip it), or null.
    pinned_image: str | None
    #: The image the last rollout moved the org to, or null.
    assigned_image: str | None
    #: The version its instance's last heartbeat reported.
    reported_version: str


def _out(row: InstanceVersion, orgs: int) -> VersionOut:
    return VersionOut(
        id=row.id,
        name=row.name,
        image=row.image,
        repository=row.repository,
        tag=row.tag,
        digest=row.digest,
        notes=row.notes,
        schema_version=row.schema_version,
        created_at=row.created_at,
        orgs=orgs,
    )


async def _counts(db: DB) -> dict[str, int]:
    return {count.image: count.orgs for count in await fleet_counts(db)}


@post("/api/v1/versions", tags=["fleet"], status_code=HTTP_201_CREATED)
async def create_version(
    data: JSONBody[VersionBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> VersionOut:
    """Register an instance version (platform admins)."""
    require_platform_admin(actor.principal)
    row = await new_version(
        db,
        runtime.settings.provisioning,
        name=data.name,
        image=data.image,
        notes=data.notes,
        schema_version=data.schema_version,
        created_by=actor.user.id,
    )
    db.add(row)
    record(
        db,
        action="version.create",
        actor=actor.user,
        target_type="version",
        target_id=row.id,
        ip=actor.ip,
        name=row.name,
        image=row.image,
    )
    await db.commit()
    return _out(row, (await _counts(db)).get(row.image, 0))


@get("/api/v1/versions", tags=["fleet"])
async def list_versions(principal: Caller, db: DB) -> dict[str, list[VersionOut]]:
    """Every registered version, newest first, with how many live orgs run it."""
    require_platform_admin(principal)
    counts = await _counts(db)
    query = select(InstanceVersion).order_by(col(InstanceVersion.created_at).desc())
    rows = (await db.exec(query)).all()
    return {"items": [_out(row, counts.get(row.image, 0)) for row in rows]}


@get("/api/v1/versions/{version:str}", tags=["fleet"])
async def get_version(version: FromPath[str], principal: Caller, db: DB) -> VersionOut:
    """One version by id or name (404 ``version_not_found``)."""
    require_platform_admin(principal)
    row = await find_version(db, version)
    return _out(row, (await _counts(db)).get(row.image, 0))


@delete("/api/v1/versions/{version:str}", tags=["fleet"], status_code=HTTP_204_NO_CONTENT)
async def delete_version(version: FromPath[str], actor: ActorDep, db: DB) -> None:
    """Forget a version no org runs and no rollout names (409 ``version_in_use``)."""
    require_platform_admin(actor.principal)
    row = await find_version(db, version)
    await check_unused(db, row)
    await db.delete(row)
    record(
        db,
        action="version.delete",
        actor=actor.user,
        target_type="version",
        target_id=row.id,
        ip=actor.ip,
        name=row.name,
    )
    await db.commit()


@get("/api/v1/fleet/versions", tags=["fleet"])
async def fleet_versions(principal: Caller, db: DB) -> FleetOut:
    """Live orgs per image they run and its version ("" image: never deployed)."""
    require_platform_admin(principal)
    return FleetOut(
        items=[FleetRow(c.image, c.version or None, c.orgs) for c in await fleet_counts(db)]
    )


@get("/api/v1/orgs/{org_ref:str}/version", tags=["fleet"])
async def org_version(access: OrgAccessDep, db: DB) -> OrgVersionOut:
    """The version the org runs (its members and platform admins)."""
    org = access.org
    instance = await db.get(Instance, org.id) or Instance(org_id=org.id, provisioner="")
    return OrgVersionOut(
        org_id=org.id,
        image=instance.image,
        version=await version_name(db, instance.image) or None,
        pinned_image=instance.pinned_image or None,
        assigned_image=instance.assigned_image or None,
        reported_version=instance.version,
    )


ROUTES = [create_version, list_versions, get_version, delete_version, fleet_versions, org_version]
