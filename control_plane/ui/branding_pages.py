"""The org page's branding forms: the branding service's rules, called as the API calls them.

A problem the service raises (a bad colour, an unsafe SVG) is shown on the org page with the
values in force unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from control_plane.branding.logo import MAX_LOGO_BYTES, LogoTooLarge, too_large_detail
from control_plane.branding.schemas import BrandingBody
from control_plane.branding.service import delete_logo, put_branding, put_logo
from control_plane.client_ip import client_ip
from control_plane.db.branding_models import OrgBranding
from control_plane.deps import DB
from control_plane.orgs.access import OrgAccess
from control_plane.orgs.guards import OrgAccessDep
from control_plane.ui.forms import back_to, form_data, page, start_over
from control_plane.ui.org_pages import detail_context
from control_plane.ui.session import Viewer
from orgplane_wire.problems import BadRequest, ProblemError


async def _refused(db: DB, viewer: Viewer, access: OrgAccess, exc: ProblemError) -> Any:
    await start_over(db, viewer)
    await db.refresh(access.org)  # the rollback expired it
    context = await detail_context(db, viewer, access, hours=24)
    status = exc.status if exc.status < 500 else 400
    return page("org_detail.html", status, notice="", error=exc.detail, **context)


@post("/orgs/{org_ref:str}/branding")
async def branding_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
) -> Any:
    """Save the org's display name, colour and contact email (empty: inherited); its
    metadata, which the form does not show, is kept."""
    data = await form_data(request)
    kept = await db.get(OrgBranding, access.org.id)
    values: dict[str, Any] = {
        name: data.get(name) or None for name in ("display_name", "primary_color", "contact_email")
    }
    try:
        body = msgspec.convert({**values, "metadata": kept.meta if kept else {}}, BrandingBody)
        await put_branding(db, principal=viewer, access=access, body=body, ip=client_ip(request))
    except msgspec.ValidationError as exc:
        return await _refused(db, viewer, access, BadRequest(str(exc)))
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc)
    return back_to(f"/ui/orgs/{access.org.slug}", "saved")


@post("/orgs/{org_ref:str}/branding/logo", request_max_body_size=2 * MAX_LOGO_BYTES)
async def logo_submit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    access: OrgAccessDep,
    viewer: Viewer,
    db: DB,
) -> Any:
    """Upload the org's logo (a file field ``logo``), or remove it (``op=remove``)."""
    form = await request.form()
    ip = client_ip(request)
    try:
        if form.get("op") == "remove":
            await delete_logo(db, principal=viewer, access=access, ip=ip)
        else:
            upload = form.get("logo")
            if not isinstance(upload, UploadFile):
                raise BadRequest("Choose a logo file to upload.", code="invalid_logo")
            data = await upload.read(MAX_LOGO_BYTES + 1)
            if len(data) > MAX_LOGO_BYTES:
                raise LogoTooLarge(too_large_detail(), field="logo")
            await put_logo(db, principal=viewer, access=access, data=data, ip=ip)
    except ProblemError as exc:
        return await _refused(db, viewer, access, exc)
    return back_to(f"/ui/orgs/{access.org.slug}", "saved")


ROUTES = [branding_submit, logo_submit]
