"""Orgs API, lifecycle: suspend, resume, delete with confirmation, cancel, lock, unlock."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, post
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.identity.client_ip import client_ip
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
    request: Request[Any, Any, Any],
    access: OrgAccessDep,
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
) -> OrgOut:
    """Stop the org's instance and keep it stopped (platform admins, admins of a parent);
    its org tokens, and its descendants', end now."""
    org = await set_suspended(
        db, principal=principal, access=access, suspended=True, ip=client_ip(request)
    )
    await revoke_org(runtime, db, org_id=org.id)
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/resume", status_code=HTTP_202_ACCEPTED, tags=["orgs"])
async def resume(
    request: Request[Any, Any, Any], access: OrgAccessDep, principal: Caller, db: DB
) -> OrgOut:
    """Run a suspended org again (platform admins, admins of a parent)."""
    org = await set_suspended(
        db, principal=principal, access=access, suspended=False, ip=client_ip(request)
    )
    return await org_out(db, org, access.role)


@delete("/api/v1/orgs/{org_ref:str}", status_code=HTTP_202_ACCEPTED, tags=["orgs"])
async def delete_org(
    request: Request[Any, Any, Any],
    access: OrgAccessDep,
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
    confirm: Confirm = None,
) -> OrgOut:
    """Start the org's pending-deletion window; ``?confirm=`` must repeat its slug."""
    org = await request_deletion(
        db,
        principal=principal,
        access=access,
        confirm=confirm,
        grace_seconds=runtime.settings.security.deletion_grace_seconds,
        ip=client_ip(request),
        mail=runtime.settings,
    )
    await revoke_org(runtime, db, org_id=org.id)
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/deletion/cancel", status_code=HTTP_200_OK, tags=["orgs"])
async def cancel(
    request: Request[Any, Any, Any], access: OrgAccessDep, principal: Caller, db: DB
) -> OrgOut:
    """Cancel a pending deletion before its window passes."""
    org = await cancel_deletion(db, principal=principal, access=access, ip=client_ip(request))
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/lock", status_code=HTTP_200_OK, tags=["orgs"])
async def lock(
    request: Request[Any, Any, Any], access: OrgAccessDep, principal: Caller, db: DB
) -> OrgOut:
    """Lock the org against deletion (owners, platform admins); cancels a pending one."""
    org = await set_deletion_lock(
        db, principal=principal, access=access, locked=True, ip=client_ip(request)
    )
    return await org_out(db, org, access.role)


@post("/api/v1/orgs/{org_ref:str}/unlock", status_code=HTTP_200_OK, tags=["orgs"])
async def unlock(
    request: Request[Any, Any, Any], access: OrgAccessDep, principal: Caller, db: DB
) -> OrgOut:
    """Allow deleting the org again (owners, platform admins)."""
    org = await set_deletion_lock(
        db, principal=principal, access=access, locked=False, ip=client_ip(request)
    )
    return await org_out(db, org, access.role)


LIFECYCLE_ROUTES = [suspend, resume, delete_org, cancel, lock, unlock]
