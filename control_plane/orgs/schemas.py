"""Request and response bodies of the orgs API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from control_plane.users.schemas import Email, Strict

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
SlugIn = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
PlanName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
OrgRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
FeatureKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
LimitValue = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
FeatureOverrides = Annotated[dict[FeatureKey, bool], msgspec.Meta(max_length=50)]
LimitOverrides = Annotated[dict[FeatureKey, LimitValue], msgspec.Meta(max_length=20)]


class CreateOrgBody(Strict):
    """``POST /api/v1/orgs``. ``plan`` defaults to the parent's plan, or ``free``."""

    name: Name
    slug: SlugIn
    plan: PlanName | None = None
    parent_id: OrgRef | None = None
    features: FeatureOverrides = msgspec.field(default_factory=dict)
    limits: LimitOverrides = msgspec.field(default_factory=dict)
    #: Platform admins only: an existing user who becomes the owner instead of the caller.
    owner_email: Email | None = None


class UpdateOrgBody(Strict):
    """``PATCH /api/v1/orgs/{org}``: fields left out are unchanged.

    ``features`` and ``limits`` replace the org's overrides as a whole; ``parent_id`` moves the
    org (``null`` makes it a top-level org, platform admins only).
    """

    name: Name | None = None
    plan: PlanName | None = None
    features: FeatureOverrides | None = None
    limits: LimitOverrides | None = None
    parent_id: OrgRef | msgspec.UnsetType | None = msgspec.UNSET


class OrgOut(msgspec.Struct):
    """An org as the API shows it; ``features`` and ``limits`` are the effective ones."""

    id: str
    slug: str
    name: str
    plan: str
    parent_id: str | None
    phase: str
    reason: str
    desired_state: str
    suspended: bool
    deletion_locked: bool
    delete_after: datetime | None
    features: list[str]
    limits: dict[str, int]
    feature_overrides: dict[str, bool]
    limit_overrides: dict[str, int]
    config_version: int
    generation: int
    created_at: datetime
    updated_at: datetime
    #: The caller's role (``None`` for a platform admin who is not a member).
    role: str | None
    #: Platform staff need an approved access request to act in the org (owners switch it).
    require_access_approval: bool = False
    #: Only in the answer to a create: the org's place in the queue for a provisioning slot
    #: (1 = next) when every slot is taken; ``None`` when it starts at once.
    queue_position: int | None = None


class LookupItem(msgspec.Struct):
    """One autocomplete entry: ``value`` is the org id, ``label`` is ``Name (slug)``."""

    value: str
    label: str
