"""Explaining feature access: for one org and one user, each feature's value and the rule
that decided it (the same :func:`~control_plane.features.rules.decide` the token exchange
runs, over the same catalogue, plan and inherited overrides)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Feature, Org, User
from control_plane.features.rules import Decider, Subject, decide, feature_keys, load_catalogue
from control_plane.features.schemas import FeatureDecision, FeatureExplanation
from control_plane.orgs.access import find_live_org, org_not_found, org_role
from control_plane.orgs.hierarchy import feature_subject
from control_plane.users.service import find_by_email
from orgplane_wire.problems import NotFound

#: The rules in precedence order, with what each means (the UI and docs/features.md).
PRECEDENCE: tuple[tuple[Decider, str], ...] = (
    (Decider.DISABLED, "Disabled: off for everyone, org overrides included."),
    (Decider.EXCLUSIVE_USER, "Exclusive users: on for a listed user."),
    (Decider.EXCLUSIVE_ORG, "Exclusive orgs: on for a listed org and every org below it."),
    (
        Decider.EXCLUSIVE_OTHERS,
        "Exclusive, not listed: a feature with an exclusive list is off for everyone else.",
    ),
    (Decider.OVERRIDE, "Override: the org's own override, else its nearest ancestor's."),
    (Decider.ENTRY_PLANS, "Entry plans: on when the org's plan is in the entry's plans."),
    (Decider.PLAN, "Built-in plan: on when the org's plan includes the feature."),
    (Decider.DEFAULT, "Default: the entry's default (off for a key with no entry)."),
)


async def find_user(db: AsyncSession, ref: str) -> User:
    """The user whose id or email is ``ref``, or 404 ``user_not_found``."""
    if "\x00" in ref:  # no user has one, and PostgreSQL would refuse to compare it
        raise NotFound("No such user.", code="user_not_found", field="user")
    user = await db.get(User, ref) if len(ref) == 32 and "@" not in ref else None
    if user is None and "@" in ref:
        user = await find_by_email(db, ref)
    if user is None:
        raise NotFound("No such user.", code="user_not_found", field="user")
    return user


async def find_org(db: AsyncSession, ref: str) -> Org:
    """The live org whose id or slug is ``ref``, or 404 ``org_not_found``."""
    org = await find_live_org(db, ref)
    if org is None:
        raise org_not_found()
    return org


def _named(org_id: str, org: Org, chain: list[Org]) -> str:
    for candidate in (org, *chain):
        if candidate.id == org_id:
            return candidate.slug
    return org_id


def _reason(
    decider: Decider, key: str, rule: Feature | None, subject: Subject, org: Org, chain: list[Org]
) -> str:
    if decider is Decider.EXCLUSIVE_ORG and rule is not None:
        listed = next(i for i in subject.org_ids if i in rule.exclusive_org_ids)
        return f"exclusive to the org {_named(listed, org, chain)}"
    if decider is Decider.OVERRIDE:
        setter = next((o for o in (org, *chain) if key in o.features), org)
        return f"override set on {'this org' if setter is org else setter.slug}"
    if decider is Decider.ENTRY_PLANS and rule is not None:
        return f"entry plans {', '.join(rule.plans)}; this org's plan is {subject.plan.name}"
    if decider is Decider.PLAN:
        return f"the {subject.plan.name} plan includes it"
    if decider is Decider.DEFAULT:
        return "the entry's default" if rule is not None else "no entry, no plan: off"
    return dict(PRECEDENCE)[decider].split(":")[0].lower()


async def explain_features(db: AsyncSession, *, org: Org, user: User | None) -> FeatureExplanation:
    """Each feature of ``org`` for ``user`` (None: as org-level gates see it), by key. Costs
    the catalogue query, the walk up the ancestors and, with a user, their role."""
    subject, chain = await feature_subject(db, org, user_id=user.id if user else None)
    catalogue = await load_catalogue(db)
    decisions = []
    for key in sorted(feature_keys(catalogue, subject)):
        rule = catalogue.get(key)
        enabled, decider = decide(rule, key, subject)
        reason = _reason(decider, key, rule, subject, org, chain)
        decisions.append(FeatureDecision(key, enabled, decider.value, reason))
    return FeatureExplanation(
        org_id=org.id,
        org_slug=org.slug,
        plan=subject.plan.name,
        user_id=user.id if user else None,
        user_email=user.email if user else None,
        role=await org_role(db, user, org) if user else None,
        features=decisions,
    )
