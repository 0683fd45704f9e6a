"""Changing an org's branding: the rules of ``PUT .../branding`` and ``.../branding/logo``.

Org admins and owners (and platform admins, through the staff gate) change their org's
branding. Each change is checked whole before anything is written (bad input changes nothing),
is audited, and bumps ``config_version`` of the org and its descendants, which inherit it, so
their instances pick it up at their next heartbeat.
"""

from __future__ import annotations

import asyncio
import math
import unicodedata
from typing import Any

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.branding.colour import checked_color
from control_plane.branding.logo import Logo, validated_logo
from control_plane.branding.schemas import MAX_METADATA_BYTES, BrandingBody
from control_plane.db.branding_models import OrgBranding, OrgLogo
from control_plane.db.models import utcnow
from control_plane.orgs.access import OrgAccess
from control_plane.orgs.service import bump_config
from control_plane.users.service import checked_email
from orgplane_wire.problems import BadRequest

#: The org's own values a ``PUT`` replaces (``meta``: the metadata column).
VALUE_FIELDS = ("display_name", "primary_color", "contact_email", "meta")


def checked_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` if its values are finite and it fits :data:`MAX_METADATA_BYTES` as JSON."""
    for key, value in meta.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest("Metadata numbers must be finite.", code="invalid_metadata",
                             field=f"metadata.{key}")  # fmt: skip
    if len(msgspec.json.encode(meta)) > MAX_METADATA_BYTES:
        raise BadRequest(
            f"Metadata is at most {MAX_METADATA_BYTES} bytes as JSON.",
            code="metadata_too_large",
            field="metadata",
        )
    return meta


def _display_name(name: str | None) -> str | None:
    if name is not None and (
        not name.strip() or any(unicodedata.category(c)[0] == "C" for c in name)
    ):
        raise BadRequest("A display name must not be blank or hold control characters.",
                         code="invalid_display_name", field="display_name")  # fmt: skip
    return name


def _contact(email: str | None) -> str | None:
    if email is None:
        return None
    try:
        return checked_email(email)
    except BadRequest:
        raise BadRequest("The contact email is not a valid email address.",
                         code="invalid_email", field="contact_email") from None  # fmt: skip


def checked_values(body: BrandingBody) -> dict[str, Any]:
    color = body.primary_color
    return {
        "display_name": _display_name(body.display_name),
        "primary_color": checked_color(color) if color is not None else None,
        "contact_email": _contact(body.contact_email),
        "meta": checked_metadata(dict(body.metadata)),
    }


async def branding_row(db: AsyncSession, org_id: str) -> OrgBranding:
    return await db.get(OrgBranding, org_id) or OrgBranding(org_id=org_id)


async def put_branding(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, body: BrandingBody, ip: str
) -> bool:
    """Replace the org's own branding values; True when something changed."""
    access.require("admin", to="change its branding")
    wanted = checked_values(body)
    row = await branding_row(db, access.org.id)
    changed = [name for name in VALUE_FIELDS if getattr(row, name) != wanted[name]]
    if not changed:
        return False
    for name in changed:
        setattr(row, name, wanted[name])
    await commit_change(db, principal, access, row, ip=ip, changed=changed)
    return True


async def commit_change(
    db: AsyncSession,
    principal: Principal,
    access: OrgAccess,
    row: OrgBranding,
    *,
    ip: str,
    changed: list[str],
    **detail: Any,
) -> None:
    """Write ``row``, bump the config of the org and its descendants, audit
    ``org.branding.update`` naming the ``changed`` fields, and commit."""
    row.updated_at = access.org.updated_at = utcnow()
    db.add(row)
    await bump_config(db, access.org)
    db.add(access.org)
    record(db, action="org.branding.update", actor=principal.user, org_id=access.org.id,
           target_type="org", target_id=access.org.id, ip=ip,
           changed=["metadata" if n == "meta" else n for n in changed], **detail)  # fmt: skip
    await db.commit()


async def store_logo(db: AsyncSession, row: OrgBranding, logo: Logo) -> None:
    """Put a validated ``logo`` in ``org_logo`` (replacing the org's) and name it in ``row``;
    in the caller's transaction."""
    stored = await db.get(OrgLogo, row.org_id) or OrgLogo(
        org_id=row.org_id, sha256="", content_type="", data=b""
    )
    stored.sha256, stored.content_type, stored.data = logo.sha256, logo.content_type, logo.data
    stored.width, stored.height, stored.created_at = logo.width, logo.height, utcnow()
    db.add(stored)
    row.logo_sha256, row.logo_content_type = logo.sha256, logo.content_type


async def drop_logo(db: AsyncSession, row: OrgBranding) -> bool:
    """Remove the org's own logo, in the caller's transaction; False when it had none."""
    stored = await db.get(OrgLogo, row.org_id)
    if stored is None:
        return False
    await db.delete(stored)
    row.logo_sha256 = row.logo_content_type = ""
    return True


async def put_logo(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, data: bytes, ip: str
) -> Logo:
    """Validate and store the org's logo (replacing any); 400/413 and nothing stored when it is
    refused."""
    access.require("admin", to="change its branding")
    logo = await asyncio.to_thread(validated_logo, data)
    row = await branding_row(db, access.org.id)
    await store_logo(db, row, logo)
    await commit_change(db, principal, access, row, ip=ip, changed=["logo"],
                         logo_sha256=logo.sha256, logo_type=logo.content_type)  # fmt: skip
    return logo


async def delete_logo(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, ip: str
) -> bool:
    """Remove the org's own logo (it inherits its parent's again); False when it had none."""
    access.require("admin", to="change its branding")
    row = await branding_row(db, access.org.id)
    if not await drop_logo(db, row):
        return False
    await commit_change(db, principal, access, row, ip=ip, changed=["logo"], logo_sha256="")
    return True


async def forget_branding(db: AsyncSession, *, org_id: str) -> None:
    """Remove a deleted org's branding and logo (its logo URL stops answering); in the
    caller's transaction."""
    for model in (OrgLogo, OrgBranding):
        row = await db.get(model, org_id)
        if row is not None:
            await db.delete(row)
