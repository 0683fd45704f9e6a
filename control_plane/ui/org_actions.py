"""Instance actions and deletion from the org page, each confirmed by typing the org's slug.

The typed slug is the UI's own guard against a mis-click; the actions themselves are the
instance API's and the lifecycle service's, called as they are.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import Request, post
from litestar.params import FromPath

from control_plane.actor import Actor
from control_plane.branding.resolve import display_name
from control_plane.client_ip import client_ip
from control_plane.deps import DB, RuntimeDep
from control_plane.instances.actions import ActionBody, act_on_instance, nudge
from control_plane.orgs.access import OrgAccess
from control_plane.orgs.guards import OrgAccessDep
from control_plane.orgs.lifecycle import cancel_deletion, request_deletion
from control_plane.ui.forms import back_to, form_data, page, start_over
from control_plane.ui.org_pages import detail_context, wake_reconciler
from control_plane.ui.session import Viewer
from orgplane_wire.problems import ProblemError

ACTIONS: dict[str, Literal["restart", "stop", "start"]] = {
    "restart": "restart",
    "stop": "stop",
    "start": "start",
}


async def _refused(db: DB, viewer: Viewer, access: OrgAccess, message: str, status: int) -> Any:
    await start_over(db, viewer)
    await db.refresh(access.org)  # the rollback expired it
    context = await detail_context(db, viewer, access, hours=24)
    return page("org_detail.html", status, notice="", error=message, **context)


@post("/orgs/{org_ref:str}/actions")
async def instance_action_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """restart, stop or start the org's instance."""
    data = await form_data(request)
    chosen = data.get("action", "")
    action = ACTIONS.get(chosen)
    if action is None:
        return await _refused(db, viewer, access, "Choose restart, stop or start.", 400)
    if data.get("confirm", "").lower() != access.org.slug:
        return await _refused(
            db, viewer, access, f"Type the org's slug to {action} its instance.", 400
        )
    try:
        await act_on_instance(
            db, runtime, Actor.of(request, viewer), access, ActionBody(action=action)
        )
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc.detail, exc.status)
    nudge(request.app.state)
    return back_to(f"/ui/orgs/{access.org.slug}", "action_requested")


@post("/orgs/{org_ref:str}/delete")
async def delete_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
    runtime: RuntimeDep,
) -> Any:
    """Start the pending-deletion window (the slug typed as confirmation)."""
    data = await form_data(request)
    try:
        org = await request_deletion(
            db,
            principal=viewer,
            access=access,
            confirm=data.get("confirm") or None,
            grace_seconds=runtime.settings.security.deletion_grace_seconds,
            ip=client_ip(request),
            display_name=display_name,
            mail=runtime.settings,
        )
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc.detail, exc.status)
    wake_reconciler(request)
    return back_to(f"/ui/orgs/{org.slug}", "deletion_requested")


@post("/orgs/{org_ref:str}/delete/cancel")
async def cancel_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
) -> Any:
    """Cancel a pending deletion."""
    try:
        org = await cancel_deletion(db, principal=viewer, access=access, ip=client_ip(request))
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc.detail, exc.status)
    return back_to(f"/ui/orgs/{org.slug}", "deletion_cancelled")


ROUTES = [instance_action_submit, delete_submit, cancel_submit]
