"""Branding export and import: an org's own branding and logo as one JSON document.

The org's data archive (``GET .../export``, ``docs/backups.md``) is made by its instance and
holds the instance's data; branding is the control plane's, so it travels beside the archive
as a document of format ``orgplane-branding/1``: the org's own values (never inherited ones)
and its own logo, base64-encoded. ``PUT .../branding/import`` checks the whole document (values
and logo, exactly as the ``PUT`` endpoints do) before it writes anything, then replaces the
org's own branding and logo in one transaction.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, Literal

from litestar import get, put
from litestar.params import JSONBody
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import ActorDep
from control_plane.auth import Principal
from control_plane.branding.logo import validated_logo
from control_plane.branding.resolve import resolve_branding
from control_plane.branding.schemas import BrandingBody, BrandingOut
from control_plane.branding.service import (
    VALUE_FIELDS,
    branding_row,
    checked_values,
    commit_change,
    drop_logo,
    store_logo,
)
from control_plane.db.branding_models import OrgBranding, OrgLogo
from control_plane.deps import DB
from control_plane.orgs.access import OrgAccess
from control_plane.orgs.guards import OrgAccessDep, needs_role
from control_plane.users.schemas import Strict

FORMAT: Final = "orgplane-branding/1"
BASE = "/api/v1/orgs/{org_ref:str}/branding"


class LogoDocument(Strict):
    """The logo's bytes (base64 in JSON); its type is found from them again on import."""

    content_type: str
    data: bytes


class BrandingDocument(Strict):
    """``orgplane-branding/1``: the org's own branding and logo (``null``: none of its own)."""

    format: Literal["orgplane-branding/1"]
    branding: BrandingBody
    logo: LogoDocument | None = None
    #: Where it came from (informative; ignored on import).
    org_slug: str = ""


async def branding_document(db: AsyncSession, access: OrgAccess) -> BrandingDocument:
    """The org's own branding and logo as a document."""
    row = await db.get(OrgBranding, access.org.id) or OrgBranding(org_id=access.org.id)
    stored = await db.get(OrgLogo, access.org.id)
    return BrandingDocument(
        format=FORMAT,
        org_slug=access.org.slug,
        branding=BrandingBody(
            display_name=row.display_name,
            primary_color=row.primary_color,
            contact_email=row.contact_email,
            metadata=dict(row.meta),
        ),
        logo=LogoDocument(stored.content_type, stored.data) if stored else None,
    )


async def import_branding(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, doc: BrandingDocument, ip: str
) -> None:
    """Replace the org's own branding and logo with ``doc``'s; nothing is written unless all
    of it is valid (400/413 as the ``PUT`` endpoints answer)."""
    access.require("admin", to="change its branding")
    wanted = checked_values(doc.branding)
    logo = await asyncio.to_thread(validated_logo, doc.logo.data) if doc.logo else None
    row = await branding_row(db, access.org.id)
    for name in VALUE_FIELDS:
        setattr(row, name, wanted[name])
    detail: dict[str, Any] = {}
    if logo is not None:
        await store_logo(db, row, logo)
        detail["logo_sha256"] = logo.sha256
    else:
        await drop_logo(db, row)
    await commit_change(db, principal, access, row, ip=ip, changed=["import"], **detail)


@get(BASE + "/export", tags=["branding"], opt=needs_role("admin", to="export its branding"))
async def export_branding(access: OrgAccessDep, db: DB) -> BrandingDocument:
    """The org's own branding and logo as an ``orgplane-branding/1`` document (org admins)."""
    return await branding_document(db, access)


@put(BASE + "/import", tags=["branding"], request_max_body_size=1024 * 1024)
async def import_branding_route(
    data: JSONBody[BrandingDocument],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> BrandingOut:
    """Replace the org's own branding and logo with an exported document's (org admins)."""
    await import_branding(db, principal=actor.principal, access=access, doc=data, ip=actor.ip)
    return await resolve_branding(db, access.org)


ROUTES = [export_branding, import_branding_route]
