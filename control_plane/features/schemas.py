"""Request and response bodies of the features API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

#: A feature key: what org overrides, tokens and instances name it by.
FEATURE_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
Id = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
PlanName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class FeatureBody(msgspec.Struct, forbid_unknown_fields=True):
    """A catalogue entry's description and access rules (PUT replaces them all)."""

    description: Annotated[str, msgspec.Meta(max_length=500)] = ""
    disabled: bool = False
    exclusive_user_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)] = []
    exclusive_org_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)] = []
    plans: Annotated[list[PlanName], msgspec.Meta(max_length=20)] = []
    default: bool = False


class FeatureRules(msgspec.Struct):
    """The access rules, shown to platform admins only (they name users and orgs)."""

    disabled: bool
    exclusive_user_ids: list[str]
    exclusive_org_ids: list[str]
    plans: list[str]
    default: bool


class FeatureOut(msgspec.Struct):
    """A catalogue entry; ``in_catalogue`` is false for a built-in feature with no entry."""

    key: str
    description: str
    in_catalogue: bool
    updated_at: datetime | None = None
    rules: FeatureRules | None = None


class FeatureDecision(msgspec.Struct):
    """One feature's value for an org and a user, and the rule that decided it."""

    key: str
    enabled: bool
    #: The deciding rule: ``disabled``, ``exclusive_user``, ``exclusive_org``,
    #: ``exclusive_others``, ``override``, ``entry_plans``, ``plan`` or ``default``.
    rule: str
    #: The rule in words, naming the org that set an override or is listed.
    reason: str


class FeatureExplanation(msgspec.Struct):
    """Every feature's value for one org and one user (or none: what org-level gates see)."""

    org_id: str
    org_slug: str
    plan: str
    user_id: str | None
    user_email: str | None
    #: The user's role in the org (None: not a member, or no user given).
    role: str | None
    features: list[FeatureDecision]
