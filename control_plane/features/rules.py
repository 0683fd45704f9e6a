"""Evaluating a feature's access rules for one org and one user.

For each feature key the first rule that applies decides (also in ``docs/features.md``):

1. **disabled**: off for everyone, org overrides included.
2. **exclusive user ids**: on for a listed user.
3. **exclusive org ids**: on for a listed org and every org below it. A feature with either
   exclusive list is off for everyone the lists do not name.
4. **overrides**: the org's own ``features`` override, else its nearest ancestor's (a child
   inherits its parent's unless it overrides it).
5. **plans/tiers**: the catalogue entry's ``plans`` when set, else the built-in plan catalogue
   (:mod:`control_plane.features.plans`) when the plan includes the feature.
6. **default**: the entry's ``default`` (off for a key the catalogue does not hold).

Keys are the built-in features plus every catalogue entry. The catalogue is small and read
afresh for every evaluation, so a changed rule applies at the next token exchange: in a query
of its own (:func:`load_catalogue`), or as one JSON column of a query that reads something else
anyway (:func:`catalogue_column`, which the token exchange uses to save a round trip).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, cast, func, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Feature
from control_plane.features.plans import KNOWN_FEATURES, Plan


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


#: The catalogue's columns that its rules read, and which of them hold JSON.
RULE_COLUMNS = ("key", "disabled", "exclusive_user_ids", "exclusive_org_ids", "plans", "default")
_JSON_COLUMNS = frozenset({"exclusive_user_ids", "exclusive_org_ids", "plans"})


class catalogue_column(FunctionElement[Any]):
    """The whole catalogue as one JSON array column (read it with :func:`catalogue_from`).

    A scalar subquery, so a statement that reads something else anyway brings the catalogue
    back in the same round trip. Each dialect has its own JSON aggregate.
    """

    type = JSON()
    inherit_cache = True


def _text(value: str) -> Any:
    """A constant SQL string (written into the statement: no bound parameter to type)."""
    return literal_column("'" + value.replace("'", "''") + "'")


def _pairs(*, json_text: bool) -> list[Any]:
    """``'name', feature.name`` for each rule column (JSON text parsed when ``json_text``)."""
    table = Feature.__table__.c  # type: ignore[attr-defined]
    pairs: list[Any] = []
    for name in RULE_COLUMNS:
        value = table[name]
        pairs += [_text(name), func.json(value) if json_text and name in _JSON_COLUMNS else value]
    return pairs


_POSTGRESQL_CATALOGUE = select(
    func.coalesce(
        func.json_agg(func.json_build_object(*_pairs(json_text=False))), cast(_text("[]"), JSON)
    )
).scalar_subquery()
# JSON columns are text in SQLite: json() embeds them as JSON, not as strings.
_SQLITE_CATALOGUE = select(
    func.json_group_array(func.json_object(*_pairs(json_text=True)))
).scalar_subquery()


@compiles(catalogue_column, "postgresql")
def _catalogue_postgresql(_: catalogue_column, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(_POSTGRESQL_CATALOGUE, **kw)


@compiles(catalogue_column, "sqlite")
def _catalogue_sqlite(_: catalogue_column, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(_SQLITE_CATALOGUE, **kw)


def catalogue_from(column: list[dict[str, Any]]) -> dict[str, Feature]:
    """The catalogue by key, from what :func:`catalogue_column` read."""
    return {
        entry["key"]: Feature(
            key=entry["key"],
            disabled=bool(entry["disabled"]),
            exclusive_user_ids=entry["exclusive_user_ids"],
            exclusive_org_ids=entry["exclusive_org_ids"],
            plans=entry["plans"],
            default=bool(entry["default"]),
        )
        for entry in column
    }


class Decider(StrEnum):
    """Which rule decided a feature, in precedence order (the first that applies decides)."""

    DISABLED = "disabled"
    EXCLUSIVE_USER = "exclusive_user"
    EXCLUSIVE_ORG = "exclusive_org"
    #: An exclusive list exists and names neither the user nor the org: off.
    EXCLUSIVE_OTHERS = "exclusive_others"
    OVERRIDE = "override"
    #: The catalogue entry's ``plans``.
    ENTRY_PLANS = "entry_plans"
    #: The built-in plan includes the feature.
    PLAN = "plan"
    DEFAULT = "default"


def _exclusive(rule: Feature, subject: Subject) -> Decider | None:
    if not rule.exclusive_user_ids and not rule.exclusive_org_ids:
        return None
    if subject.user_id is not None and subject.user_id in rule.exclusive_user_ids:
        return Decider.EXCLUSIVE_USER
    if any(org_id in rule.exclusive_org_ids for org_id in subject.org_ids):
        return Decider.EXCLUSIVE_ORG
    return Decider.EXCLUSIVE_OTHERS


def decide(rule: Feature | None, key: str, subject: Subject) -> tuple[bool, Decider]:
    """Whether ``key`` (with catalogue entry ``rule``, if any) is on for ``subject``, and the
    rule that decided it."""
    if rule is not None:
        if rule.disabled:
            return False, Decider.DISABLED
        exclusive = _exclusive(rule, subject)
        if exclusive is not None:
            return exclusive is not Decider.EXCLUSIVE_OTHERS, exclusive
    override = subject.overrides.get(key)
    if override is not None:
        return override, Decider.OVERRIDE
    if rule is not None and rule.plans:
        return subject.plan.name in rule.plans, Decider.ENTRY_PLANS
    if key in subject.plan.features:
        return True, Decider.PLAN
    return (rule.default if rule is not None else False), Decider.DEFAULT


def feature_enabled(rule: Feature | None, key: str, subject: Subject) -> bool:
    """Whether ``key`` (with catalogue entry ``rule``, if any) is on for ``subject``."""
    return decide(rule, key, subject)[0]


def feature_keys(catalogue: Mapping[str, Feature], subject: Subject) -> set[str]:
    """Every key a subject has a value for: built in, in the catalogue, or overridden."""
    return set(KNOWN_FEATURES) | catalogue.keys() | subject.overrides.keys()


def enabled_features(catalogue: Mapping[str, Feature], subject: Subject) -> list[str]:
    """Sorted keys of every feature that is on for ``subject``."""
    keys = feature_keys(catalogue, subject)
    return sorted(key for key in keys if feature_enabled(catalogue.get(key), key, subject))
