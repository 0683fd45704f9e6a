"""An org's branding and its logo (``control_plane.branding``). Registered with the other
tables by ``control_plane.db.models``.

The logo's bytes live in their own table so that resolving branding (which walks the org's
ancestors) never loads an image.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from control_plane.db.models import _json, _ts


class OrgBranding(SQLModel, table=True):
    """What an org sets for itself; a value left ``None`` is inherited from its parent."""

    __tablename__ = "org_branding"
    org_id: str = Field(foreign_key="org.id", primary_key=True, max_length=32)
    display_name: str | None = Field(default=None, max_length=200)
    #: ``#rrggbb``, lower case.
    primary_color: str | None = Field(default=None, max_length=7)
    contact_email: str | None = Field(default=None, max_length=320)
    #: Free-form, bounded (``control_plane.branding.schemas.Metadata``); not inherited.
    meta: dict[str, Any] = _json()
    #: The logo in ``org_logo`` (its SHA-256 and type); "" when the org has none of its own.
    logo_sha256: str = Field(default="", max_length=64, index=True)
    logo_content_type: str = Field(default="", max_length=40)
    updated_at: datetime = _ts()


class OrgLogo(SQLModel, table=True):
    """The validated bytes of an org's own logo (at most one per org)."""

    __tablename__ = "org_logo"
    org_id: str = Field(foreign_key="org.id", primary_key=True, max_length=32)
    sha256: str = Field(max_length=64, index=True)
    content_type: str = Field(max_length=40)
    width: int = 0
    height: int = 0
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts()
