"""Orgs API, lifecycle: suspend, resume, delete with confirmation, cancel, lock, unlock."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, post
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from control_plane.actor import ActorDep
from control_plane.branding.resolve import display_name
from control_plane.deps import DB, RuntimeDep
from control_plane.orgs.guards import OrgAccessDep
from control_plane.orgs.lifecycle import (
    cancel_deletion,
    request_deletion,
    set_deletion_lock,
    set_suspended,
)
from control_plane.orgs.schemas import OrgOut
from control_plane.orgs.service import org_out
from control_plane.tokens.org_revocation import revoke_org

Confirm = Annotated[str | None, QueryParameter(max_length=100)]


@post("/api/v1/orgs/{org_ref:str}/suspend", status_code=HTTP_202_ACCEPTED, tags=["orgs"])
async def suspend(
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> OrgOut:
    """Stop the org's instance and keep it stopped (platform admins, admins of a parent);
    its org tokens, and its descendants', end now."""
    org = await set_suspended(
        db, principal=actor.principal, access=access, suspended=True, ip=actor.ip
    )
    await revoke_org(runtime, db, org_id=org.id)
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/resume", status_code=HTTP_202_ACCEPTED, tags=["orgs"])
async def resume(access: OrgAccessDep, actor: ActorDep, db: DB) -> OrgOut:
    """Run a suspended org again (platform admins, admins of a parent)."""
    org = await set_suspended(
        db, principal=actor.principal, access=access, suspended=False, ip=actor.ip
    )
    return await org_out(db, org, access.role)


@delete("/api/v1/orgs/{org_ref:str}", status_code=HTTP_202_ACCEPTED, tags=["orgs"])
async def delete_org(
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
    confirm: Confirm = None,
) -> OrgOut:
    """Start the org's pending-deletion window; ``?confirm=`` must repeat its slug."""
    org = await request_deletion(
        db,
        principal=actor.principal,
        access=access,
        confirm=confirm,
        grace_seconds=runtime.settings.security.deletion_grace_seconds,
        ip=actor.ip,
        display_name=display_name,
        mail=runtime.settings,
    )
    await revoke_org(runtime, db, org_id=org.id)
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/deletion/cancel", status_code=HTTP_200_OK, tags=["orgs"])
async def cancel(access: OrgAccessDep, actor: ActorDep, db: DB) -> OrgOut:
    """Cancel a pending deletion before its window passes."""
    org = await cancel_deletion(db, principal=actor.principal, access=access, ip=actor.ip)
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/lock", status_code=HTTP_200_OK, tags=["orgs"])
async def lock(access: OrgAccessDep, actor: ActorDep, db: DB) -> OrgOut:
    """Lock the org against deletion (owners, platform admins); cancels a pending one."""
    org = await set_deletion_lock(
        db, principal=actor.principal, access=access, locked=True, ip=actor.ip
    )
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/unlock", status_code=HTTP_200_OK, tags=["orgs"])
async def unlock(access: OrgAccessDep, actor: ActorDep, db: DB) -> OrgOut:
    """Allow deleting the org again (owners, platform admins)."""
    org = await set_deletion_lock(
        db, principal=actor.principal, access=access, locked=False, ip=actor.ip
    )
    return await org_out(db, org, access.role)


LIFECYCLE_ROUTES = [suspend, resume, delete_org, cancel, lock, unlock]
