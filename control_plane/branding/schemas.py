"""Bodies of the branding API."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from control_plane.users.schemas import Strict

#: Bounds of an org's free-form metadata.
MAX_METADATA_KEYS: Final = 32
MAX_METADATA_BYTES: Final = 8 * 1024

DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Color = Annotated[str, msgspec.Meta(max_length=7)]
ContactEmail = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
MetadataKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
MetadataValue = (
    Annotated[str, msgspec.Meta(max_length=2048)]
    | Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]
    | float
    | bool
)
Metadata = Annotated[dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=MAX_METADATA_KEYS)]


class BrandingBody(Strict):
    """``PUT /api/v1/orgs/{org}/branding``: the org's own values, replaced as a whole. A value
    left out or ``null`` is inherited from the parent org (the display name falls back to the
    org's name). The logo has its own endpoint."""

    display_name: DisplayName | None = None
    primary_color: Color | None = None
    contact_email: ContactEmail | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class OwnBranding(msgspec.Struct):
    """What the org sets itself (``None``: inherited)."""

    display_name: str | None
    primary_color: str | None
    contact_email: str | None
    logo_url: str | None
    metadata: dict[str, str | int | float | bool]


class Source(msgspec.Struct):
    """Where a resolved value came from: the org itself, an ancestor, or the default."""

    kind: Literal["own", "inherited", "default"]
    org_id: str | None = None
    org_slug: str | None = None


class ResolvedBranding(msgspec.Struct):
    """The branding in force: each value the org's own, else the nearest ancestor's."""

    display_name: str
    primary_color: str | None
    #: White or near-black, whichever contrasts more with ``primary_color`` (WCAG).
    text_color: str | None
    contact_email: str | None
    logo_url: str | None


class BrandingOut(msgspec.Struct):
    """``GET /api/v1/orgs/{org}/branding``."""

    org_id: str
    own: OwnBranding
    resolved: ResolvedBranding
    #: For each field of ``resolved`` (``text_color`` follows ``primary_color``).
    sources: dict[str, Source]
