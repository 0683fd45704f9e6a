"""Branding API: read and replace an org's branding, upload its logo, serve logos.

``GET /api/v1/branding/logos/{sha256}`` is public: a logo is shown on pages and in emails to
people who may not be signed in, and its URL names it by content, so it cannot be guessed
without the logo. It answers with the stored type, ``nosniff`` and a Content-Security-Policy
that stops script and every load, should an SVG ever get past the allow-list.
"""

from __future__ import annotations

import re
from typing import Any, Final

from litestar import Request, Response, delete, get, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT
from sqlmodel import col, select

from control_plane.actor import ActorDep
from control_plane.branding.logo import MAX_LOGO_BYTES, LogoTooLarge, too_large_detail
from control_plane.branding.resolve import LOGO_PATH, resolve_branding
from control_plane.branding.schemas import BrandingBody, BrandingOut
from control_plane.branding.service import delete_logo, put_branding, put_logo
from control_plane.branding.transfer import ROUTES as TRANSFER_ROUTES
from control_plane.client_ip import client_ip
from control_plane.db.branding_models import OrgLogo
from control_plane.deps import DB, Caller
from control_plane.orgs.guards import OrgAccessDep, needs_role
from orgplane_wire.problems import NotFound

BASE = "/api/v1/orgs/{org_ref:str}/branding"
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
#: A logo may draw itself and nothing else: no script, no fetch, no navigation, no form.
LOGO_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
LOGO_HEADERS: Final = {
    "Content-Security-Policy": LOGO_CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=31536000, immutable",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


@get(BASE, tags=["branding"])
async def read_branding(access: OrgAccessDep, db: DB) -> BrandingOut:
    """The org's own branding, the branding in force (inherited value by value) and where each
    value came from. Any member may read it."""
    return await resolve_branding(db, access.org)


@put(BASE, tags=["branding"])
async def replace_branding(
    data: JSONBody[BrandingBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> BrandingOut:
    """Replace the org's own values (org admins and owners); ``null`` inherits."""
    await put_branding(db, principal=actor.principal, access=access, body=data, ip=actor.ip)
    return await resolve_branding(db, access.org)


async def _bounded_body(request: Request[Any, Any, Any]) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_LOGO_BYTES:
            raise LogoTooLarge(too_large_detail(), field="logo")
    return bytes(body)


@put(
    BASE + "/logo",
    tags=["branding"],
    request_max_body_size=None,
    opt=needs_role("admin", to="change its branding"),
)
async def upload_logo(
    request: Request[Any, Any, Any], access: OrgAccessDep, principal: Caller, db: DB
) -> BrandingOut:
    """Upload the org's logo as the raw body: PNG, WebP or SVG, at most 256 KiB and 1024 px a
    side, recognised by content (the Content-Type sent is ignored); SVG only from a strict
    allow-list (docs/branding.md)."""
    data = await _bounded_body(request)
    await put_logo(db, principal=principal, access=access, data=data, ip=client_ip(request))
    return await resolve_branding(db, access.org)


@delete(BASE + "/logo", tags=["branding"], status_code=HTTP_204_NO_CONTENT)
async def remove_logo(access: OrgAccessDep, actor: ActorDep, db: DB) -> None:
    """Remove the org's own logo (it shows its parent's again, if any)."""
    await delete_logo(db, principal=actor.principal, access=access, ip=actor.ip)


@get(LOGO_PATH + "/{sha256:str}", tags=["branding"])
async def logo(sha256: FromPath[str], db: DB) -> Response[bytes]:
    """A stored logo by its SHA-256 (public)."""
    if not _SHA256.fullmatch(sha256):
        raise NotFound("No such logo.", code="logo_not_found")
    stored = (await db.exec(select(OrgLogo).where(col(OrgLogo.sha256) == sha256).limit(1))).first()
    if stored is None:
        raise NotFound("No such logo.", code="logo_not_found")
    return Response(stored.data, media_type=stored.content_type, headers=LOGO_HEADERS)


ROUTES = [read_branding, replace_branding, upload_logo, remove_logo, logo, *TRANSFER_ROUTES]
