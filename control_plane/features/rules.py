"""Evaluating a feature's access rules for one org and one user.

For each feature key the first rule that applies decides (also in ``docs/features.md``):

1. **disabled**: off for everyone, org overrides included.
2. **exclusive user ids**: on for a listed user.
3. **exclusive org ids**: on for a listed org and every org below it. A feature with either
   exclusive list is off for everyone the lists do not name.
4. **overrides**: the org's own ``features`` override, else its nearest ancestor's (a child
   inherits its parent's unless it overrides it).
5. **plans/tiers**: the catalogue entry's ``plans`` when set, else the built-in plan catalogue
   (:mod:`control_plane.orgs.plans`) when the plan includes the feature.
6. **default**: the entry's ``default`` (off for a key the catalogue does not hold).

Keys are the built-in features plus every catalogue entry. The catalogue is small and read
in one query per evaluation, so a changed rule applies at the next token exchange.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Feature
from control_plane.orgs.plans import KNOWN_FEATURES, Plan


@dataclass(frozen=True)
class Subject:
    """Who a feature is evaluated for: a user (or none) in an org below its ancestors."""

    user_id: str | None
    #: The org's id first, then its ancestors' ids, the root last.
    org_ids: Sequence[str]
    plan: Plan
    #: Overrides merged from the root down to the org (the org's own last).
    overrides: Mapping[str, bool]


# Built once: it runs at every token exchange, where building a statement costs more than
# running it on a small table.
_CATALOGUE = select(Feature)


async def load_catalogue(db: AsyncSession) -> dict[str, Feature]:
    """Every catalogue entry by key (one query)."""
    return {row.key: row for row in (await db.exec(_CATALOGUE)).all()}


def _exclusive(rule: Feature, subject: Subject) -> bool | None:
    if not rule.exclusive_user_ids and not rule.exclusive_org_ids:
        return None
    if subject.user_id is not None and subject.user_id in rule.exclusive_user_ids:
        return True
    return any(org_id in rule.exclusive_org_ids for org_id in subject.org_ids)


def _by_plan(rule: Feature | None, key: str, subject: Subject) -> bool:
    if rule is not None and rule.plans:
        return subject.plan.name in rule.plans
    if key in subject.plan.features:
        return True
    return rule.default if rule is not None else False


def feature_enabled(rule: Feature | None, key: str, subject: Subject) -> bool:
    """Whether ``key`` (with catalogue entry ``rule``, if any) is on for ``subject``."""
    if rule is not None:
        if rule.disabled:
            return False
        exclusive = _exclusive(rule, subject)
        if exclusive is not None:
            return exclusive
    override = subject.overrides.get(key)
    if override is not None:
        return override
    return _by_plan(rule, key, subject)


def enabled_features(catalogue: Mapping[str, Feature], subject: Subject) -> list[str]:
    """Sorted keys of every feature that is on for ``subject``."""
    keys = KNOWN_FEATURES | catalogue.keys() | subject.overrides.keys()
    return sorted(key for key in keys if feature_enabled(catalogue.get(key), key, subject))
