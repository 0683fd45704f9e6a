"""Orgs API: create, list, look up, read, update; lifecycle endpoints in ``lifecycle_routes``.

Every ``{org_ref}`` in a path accepts the org's id or its slug. An org the caller cannot see
answers 404 ``org_not_found``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get, patch, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from control_plane.actor import ActorDep
from control_plane.capacity.admission import queue_position
from control_plane.capacity.spares import claim_spare
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.orgs.access import org_role
from control_plane.orgs.guards import OrgAccessDep
from control_plane.orgs.lifecycle_routes import LIFECYCLE_ROUTES
from control_plane.orgs.listing import list_orgs, lookup_orgs
from control_plane.orgs.schemas import CreateOrgBody, LookupItem, OrgOut, UpdateOrgBody
from control_plane.orgs.service import create_org, org_out, update_org
from control_plane.orgs.slugs import platform_labels
from orgplane_wire.cursors import Page

#: Optional query text: search terms, filters, cursors.
QueryText = Annotated[str | None, QueryParameter(max_length=200)]
QueryIds = Annotated[str | None, QueryParameter(max_length=4000)]


@post("/api/v1/orgs", status_code=HTTP_202_ACCEPTED, tags=["orgs"])
async def create(
    data: JSONBody[CreateOrgBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> OrgOut:
    """Create an org (phase ``pending``); the caller, or ``owner_email``, becomes its owner.

    202: the instance starts in the background; ``queue_position`` says how many orgs are
    ahead of it when every provisioning slot is taken."""
    org = await create_org(
        db,
        principal=actor.principal,
        body=data,
        ip=actor.ip,
        claim_spare=claim_spare,
        reserved=platform_labels(runtime.settings),
    )
    out = await org_out(db, org, await org_role(db, actor.user, org))
    limit = runtime.settings.provisioning.max_concurrent_provisioning
    return msgspec.structs.replace(out, queue_position=await queue_position(db, org, limit=limit))


@get("/api/v1/orgs", tags=["orgs"])
async def list_(
    principal: Caller,
    db: DB,
    limit: FromQuery[int] = 50,
    cursor: QueryText = None,
    plan: QueryText = None,
    phase: QueryText = None,
    parent_id: QueryText = None,
    q: QueryText = None,
) -> Page[OrgOut]:
    """Orgs the caller can see (all of them for platform admins), by slug, keyset-paginated."""
    return await list_orgs(
        db, principal, limit=limit, cursor=cursor, plan=plan, phase=phase, parent_id=parent_id, q=q
    )


@get("/api/v1/orgs/lookup", tags=["orgs"])
async def lookup(
    principal: Caller,
    db: DB,
    q: QueryText = None,
    ids: QueryIds = None,
) -> list[LookupItem]:
    """Autocomplete for admin UIs: ``?q=`` (at most 20) or ``?ids=a,b`` (labels of known ids)."""
    return await lookup_orgs(db, principal, q=q, ids=ids)


@get("/api/v1/orgs/{org_ref:str}", tags=["orgs"])
async def read(access: OrgAccessDep, db: DB) -> OrgOut:
    """One org, by id or slug."""
    return await org_out(db, access.org, access.role)


@patch("/api/v1/orgs/{org_ref:str}", tags=["orgs"])
async def update(
    data: JSONBody[UpdateOrgBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> OrgOut:
    """Rename (org admins), or change plan, overrides or parent (governors of the org)."""
    org = await update_org(db, principal=actor.principal, access=access, body=data, ip=actor.ip)
    return await org_out(db, org, access.role)


ROUTES = [create, list_, lookup, read, update, *LIFECYCLE_ROUTES]
