"""The feature-rules page (platform admins): the catalogue's access rules in precedence order,
and an explain form that shows, for one user and one org, each feature's value and the rule
that decided it.

The page reads through the same services as the features API (``features.rules`` and
``orgs.feature_explain``), so what it shows is what the token exchange grants. The form is a plain
GET form (user by email or id, org by slug or id); ``ui.js`` adds autocomplete from the org
lookup and the users list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import get
from litestar.params import QueryParameter
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import require_platform_admin
from control_plane.db.models import Feature, Org, User
from control_plane.deps import DB
from control_plane.features.plans import KNOWN_FEATURES, PLANS
from control_plane.features.rules import load_catalogue
from control_plane.orgs.feature_explain import PRECEDENCE, explain_features, find_org, find_user
from control_plane.ui.forms import page
from control_plane.ui.session import Viewer
from orgplane_wire.problems import ProblemError

Ref = Annotated[str | None, QueryParameter(max_length=320)]


@dataclass(frozen=True)
class RuleRow:
    """One feature's rules as the page shows them (ids replaced by emails and slugs)."""

    key: str
    description: str
    in_catalogue: bool
    disabled: bool
    exclusive_users: list[str]
    exclusive_orgs: list[str]
    plans: list[str]
    default: bool
    #: The built-in plans that include the feature.
    built_in_plans: list[str]


async def _labels(db: AsyncSession, catalogue: dict[str, Feature]) -> dict[str, str]:
    """Emails and slugs of the users and orgs the rules name, by id (two queries)."""
    user_ids = {i for row in catalogue.values() for i in row.exclusive_user_ids}
    org_ids = {i for row in catalogue.values() for i in row.exclusive_org_ids}
    labels: dict[str, str] = {}
    if user_ids:
        users = await db.exec(select(User).where(col(User.id).in_(user_ids)))
        labels.update({u.id: u.email for u in users.all()})
    if org_ids:
        orgs = await db.exec(select(Org).where(col(Org.id).in_(org_ids)))
        labels.update({o.id: o.slug for o in orgs.all()})
    return labels


async def rule_rows(db: AsyncSession) -> list[RuleRow]:
    """Every built-in feature and catalogue entry, by key."""
    catalogue = await load_catalogue(db)
    labels = await _labels(db, catalogue)
    rows = []
    for key in sorted(KNOWN_FEATURES | catalogue.keys()):
        entry = catalogue.get(key)
        built_in = [plan.name for plan in PLANS.values() if key in plan.features]
        rows.append(
            RuleRow(
                key=key,
                description=entry.description if entry else "",
                in_catalogue=entry is not None,
                disabled=bool(entry and entry.disabled),
                exclusive_users=[
                    labels.get(i, i) for i in (entry.exclusive_user_ids if entry else [])
                ],
                exclusive_orgs=[
                    labels.get(i, i) for i in (entry.exclusive_org_ids if entry else [])
                ],
                plans=list(entry.plans) if entry else [],
                default=bool(entry and entry.default),
                built_in_plans=built_in,
            )
        )
    return rows


@get("/features")
async def features_page(viewer: Viewer, db: DB, user: Ref = None, org: Ref = None) -> Any:
    """The rules, and with ``?org=`` (and optionally ``?user=``) the explanation."""
    require_platform_admin(viewer)
    explanation, error, status = None, "", 200
    if org:
        try:
            found = await find_org(db, org)
            subject = await find_user(db, user) if user else None
            explanation = await explain_features(db, org=found, user=subject)
        except ProblemError as exc:
            error, status = exc.detail, exc.status
    elif user:
        error, status = "Choose an org to explain the features for this user.", 400
    return page(
        "features.html",
        status,
        me=viewer.user,
        precedence=PRECEDENCE,
        rules=await rule_rows(db),
        values={"user": user or "", "org": org or ""},
        explanation=explanation,
        error=error,
    )


ROUTES = [features_page]
