"""Branding in force for an org: each value its own, else the nearest ancestor's.

Resolution reads the ``org_branding`` rows of the org and its ancestors in one query (never a
logo's bytes). The display name falls back to the org's name; metadata is the org's own only
(it describes that org, so children do not inherit it).
"""

from __future__ import annotations

from typing import Final

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.branding.colour import text_color
from control_plane.branding.schemas import BrandingOut, OwnBranding, ResolvedBranding, Source
from control_plane.db.branding_models import OrgBranding
from control_plane.db.models import Org
from control_plane.orgs.hierarchy import ancestors
from orgplane_wire.contract import Branding

#: Where logos are served (``GET``, public: the URL names the logo by its SHA-256).
LOGO_PATH: Final = "/api/v1/branding/logos"
INHERITED: Final = ("display_name", "primary_color", "contact_email", "logo_url")


def logo_url(row: OrgBranding | None, *, base_url: str = "") -> str | None:
    """The URL of the org's own logo, or None when it has none."""
    if row is None or not row.logo_sha256:
        return None
    return f"{base_url}{LOGO_PATH}/{row.logo_sha256}"


def own_branding(row: OrgBranding | None, *, base_url: str = "") -> OwnBranding:
    """The values ``row`` sets (all ``None`` without a row)."""
    if row is None:
        return OwnBranding(None, None, None, None, {})
    return OwnBranding(
        display_name=row.display_name,
        primary_color=row.primary_color,
        contact_email=row.contact_email,
        logo_url=logo_url(row, base_url=base_url),
        metadata=dict(row.meta),
    )


async def branding_rows(db: AsyncSession, org_ids: list[str]) -> dict[str, OrgBranding]:
    """The branding rows of ``org_ids`` that exist, by org id."""
    rows = (await db.exec(select(OrgBranding).where(col(OrgBranding.org_id).in_(org_ids)))).all()
    return {row.org_id: row for row in rows}


async def resolve_branding(db: AsyncSession, org: Org, *, base_url: str = "") -> BrandingOut:
    """The org's own branding, the branding in force, and where each value came from.
    ``base_url``: prefix of the logo URL (empty: a path on the control plane)."""
    chain = [org, *await ancestors(db, org)]
    rows = await branding_rows(db, [o.id for o in chain])
    values: dict[str, str | None] = {}
    sources: dict[str, Source] = {}
    for name in INHERITED:
        values[name], sources[name] = None, Source(kind="default")
        for holder in chain:
            own = own_branding(rows.get(holder.id), base_url=base_url)
            value = getattr(own, name)
            if value is not None:
                values[name] = value
                sources[name] = Source(kind="own" if holder is org else "inherited",
                                       org_id=holder.id, org_slug=holder.slug)  # fmt: skip
                break
    color = values["primary_color"]
    sources["text_color"] = sources["primary_color"]
    resolved = ResolvedBranding(
        display_name=values["display_name"] or org.name,
        primary_color=color,
        text_color=text_color(color) if color else None,
        contact_email=values["contact_email"],
        logo_url=values["logo_url"],
    )
    return BrandingOut(
        org_id=org.id,
        own=own_branding(rows.get(org.id), base_url=base_url),
        resolved=resolved,
        sources=sources,
    )


async def instance_branding(db: AsyncSession, org: Org, *, base_url: str) -> Branding:
    """The branding in force as the heartbeat answer hands it to the org's instance."""
    resolved = (await resolve_branding(db, org, base_url=base_url)).resolved
    return Branding(
        display_name=resolved.display_name,
        primary_color=resolved.primary_color,
        text_color=resolved.text_color,
        contact_email=resolved.contact_email,
        logo_url=resolved.logo_url,
    )


async def display_name(db: AsyncSession, org: Org) -> str:
    """The org's display name in force (its own, an ancestor's, else its name): what emails
    call it."""
    return (await resolve_branding(db, org)).resolved.display_name


async def resolved_for(db: AsyncSession, orgs: list[Org]) -> dict[str, ResolvedBranding]:
    """The branding in force of each org, by id (the UI's org list)."""
    return {org.id: (await resolve_branding(db, org)).resolved for org in orgs}
