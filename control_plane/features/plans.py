"""The plan catalogue: what each tier includes before an org or its ancestors override it.

Limit keys are those of :class:`orgplane_wire.contract.Limits`; a missing key means unlimited.
Every plan here sets every key, so a child's quota can always be carved out of its parent's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from orgplane_wire.contract import Limits
from orgplane_wire.problems import BadRequest, Forbidden
from provisioners.base import Resources

GIB: Final = 1024**3

#: The limit keys an org instance enforces (the keys of ``Limits``).
LIMIT_KEYS: Final = frozenset(Limits.__annotations__)

#: Features the platform knows; overrides may only name these.
KNOWN_FEATURES: Final = frozenset(
    {"chat", "files", "api_access", "custom_domains", "sso", "audit_export"}
)


@dataclass(frozen=True)
class Plan:
    """A tier: its rank (for "no higher than the parent"), default limits and features."""

    name: str
    rank: int
    limits: MappingProxyType[str, int]
    features: frozenset[str] = field(default_factory=frozenset)

    def default_features(self) -> dict[str, bool]:
        """The plan's features as an override-shaped map ({key: True})."""
        return dict.fromkeys(sorted(self.features), True)


def _plan(name: str, rank: int, limits: dict[str, int], features: set[str]) -> Plan:
    if set(limits) != LIMIT_KEYS or not features <= KNOWN_FEATURES:
        raise ValueError(f"plan {name} must set every limit and only known features")
    return Plan(name, rank, MappingProxyType(limits), frozenset(features))


PLANS: Final[MappingProxyType[str, Plan]] = MappingProxyType(
    {
        "free": _plan(
            "free",
            0,
            {
                "max_sessions": 10,
                "max_storage_bytes": 1 * GIB,
                "requests_per_minute": 600,
                "max_runners": 1,
                "max_members": 5,
            },
            {"chat", "files"},
        ),
        "team": _plan(
            "team",
            1,
            {
                "max_sessions": 100,
                "max_storage_bytes": 50 * GIB,
                "requests_per_minute": 6_000,
                "max_runners": 5,
                "max_members": 50,
            },
            {"chat", "files", "api_access", "custom_domains"},
        ),
        "enterprise": _plan(
            "enterprise",
            2,
            {
                "max_sessions": 1_000,
                "max_storage_bytes": 1024 * GIB,
                "requests_per_minute": 60_000,
                "max_runners": 50,
                "max_members": 1_000,
            },
            set(KNOWN_FEATURES),
        ),
    }
)

DEFAULT_PLAN: Final = "free"


def plan_named(name: str) -> Plan:
    """The plan called ``name``, or 400 ``unknown_plan`` listing the valid ones."""
    plan = PLANS.get(name)
    if plan is None:
        raise BadRequest(
            f"Unknown plan {name!r}; choose one of: {', '.join(PLANS)}.",
            code="unknown_plan",
            field="plan",
        )
    return plan


def require_feature(enabled: Collection[str], key: str, *, to: str) -> None:
    """403 ``feature_not_in_plan`` (naming ``feature``) unless ``key`` is among ``enabled``.

    ``enabled`` is the org's *effective* features (``orgs.hierarchy.effective_features`` with
    no user): its plan, its and its ancestors' overrides and the catalogue's rules, the set the
    org API shows. So a platform admin grants a feature to one org with an override, or takes
    it from everyone with a disabled rule, and the gate follows.
    """
    if key not in enabled:
        raise Forbidden(
            f"This org's plan does not include {key!r}, needed to {to}.",
            code="feature_not_in_plan",
            feature=key,
        )


def check_overrides(*, features: dict[str, bool], limits: dict[str, int]) -> None:
    """400 ``unknown_feature`` / ``unknown_limit`` when an override names an unknown key."""
    for key in features:
        if key not in KNOWN_FEATURES:
            raise BadRequest(
                f"Unknown feature {key!r}; known features: {', '.join(sorted(KNOWN_FEATURES))}.",
                code="unknown_feature",
                field=f"features.{key}",
            )
    for key in limits:
        if key not in LIMIT_KEYS:
            raise BadRequest(
                f"Unknown limit {key!r}; known limits: {', '.join(sorted(LIMIT_KEYS))}.",
                code="unknown_limit",
                field=f"limits.{key}",
            )


#: CPU cores, memory and data-volume size of each plan's instance; unknown plans get "free".
#: The instance's start is CPU-bound: under a 0.25-core limit it takes ~4 s to boot, under one
#: core ~1 s (docs/performance.md), so no plan gets less than a core at its peak.
PLAN_RESOURCES: dict[str, Resources] = {
    "free": Resources(cpu=1.0, memory_mb=256, storage_mb=512),
    "team": Resources(cpu=1.0, memory_mb=512, storage_mb=2048),
    "enterprise": Resources(cpu=2.0, memory_mb=1024, storage_mb=10240),
}
