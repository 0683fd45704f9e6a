"""Features API: the catalogue of feature keys and their access rules.

Anyone authenticated reads the catalogue (keys and descriptions); the rules, which name users
and orgs, are shown to platform admins only, who alone write them. A changed rule applies at
the next token exchange (org tokens carry the effective features).
"""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, put
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.auth import Principal, require_platform_admin
from control_plane.db.models import Feature, utcnow
from control_plane.deps import DB, Caller
from control_plane.features.plans import KNOWN_FEATURES, plan_named
from control_plane.features.rules import load_catalogue
from control_plane.features.schemas import (
    FEATURE_KEY_PATTERN,
    FeatureBody,
    FeatureExplanation,
    FeatureOut,
    FeatureRules,
)
from control_plane.orgs.feature_explain import explain_features, find_org, find_user
from orgplane_wire.problems import BadRequest, NotFound

FeatureKey = Annotated[str, PathParameter(pattern=FEATURE_KEY_PATTERN)]
#: Optional in the schema so that a caller without credentials hears 401 before 400.
OrgRef = Annotated[str | None, QueryParameter(min_length=1, max_length=200)]
UserRef = Annotated[str | None, QueryParameter(min_length=1, max_length=320)]


def _out(key: str, row: Feature | None, principal: Principal) -> FeatureOut:
    if row is None:
        return FeatureOut(key=key, description="", in_catalogue=False)
    rules = None
    if principal.is_platform_admin:
        rules = FeatureRules(
            disabled=row.disabled,
            exclusive_user_ids=list(row.exclusive_user_ids),
            exclusive_org_ids=list(row.exclusive_org_ids),
            plans=list(row.plans),
            default=row.default,
        )
    return FeatureOut(
        key=key,
        description=row.description,
        in_catalogue=True,
        updated_at=row.updated_at,
        rules=rules,
    )


def _not_found() -> NotFound:
    return NotFound("No such feature.", code="feature_not_found")


@get("/api/v1/features", tags=["features"])
async def list_features(principal: Caller, db: DB) -> list[FeatureOut]:
    """The built-in features and every catalogue entry, by key."""
    catalogue = await load_catalogue(db)
    keys = sorted(KNOWN_FEATURES | catalogue.keys())
    return [_out(key, catalogue.get(key), principal) for key in keys]


@get("/api/v1/features/explain", tags=["features"])
async def explain(
    principal: Caller, db: DB, org: OrgRef = None, user: UserRef = None
) -> FeatureExplanation:
    """Each feature's value for ``org`` (id or slug) and ``user`` (id or email; none: as the
    org's own gates see it), and the rule that decided it (platform admins). 400
    ``org_required`` without ``org``; 404 ``org_not_found`` / ``user_not_found``."""
    require_platform_admin(principal)
    if org is None:
        raise BadRequest(
            "Name the org to explain, by id or slug.", code="org_required", field="org"
        )
    found = await find_org(db, org)
    return await explain_features(db, org=found, user=await find_user(db, user) if user else None)


@get("/api/v1/features/{key:str}", tags=["features"])
async def read_feature(key: FeatureKey, principal: Caller, db: DB) -> FeatureOut:
    """One feature (404 ``feature_not_found`` for a key that is neither built in nor listed)."""
    row = await db.get(Feature, key)
    if row is None and key not in KNOWN_FEATURES:
        raise _not_found()
    return _out(key, row, principal)


@put("/api/v1/features/{key:str}", tags=["features"])
async def put_feature(
    key: FeatureKey,
    data: JSONBody[FeatureBody],
    actor: ActorDep,
    db: DB,
) -> FeatureOut:
    """Create or replace a catalogue entry (platform admins)."""
    require_platform_admin(actor.principal)
    for plan in data.plans:
        plan_named(plan)
    row = await db.get(Feature, key) or Feature(key=key)
    row.description = data.description
    row.disabled = data.disabled
    row.exclusive_user_ids = sorted(set(data.exclusive_user_ids))
    row.exclusive_org_ids = sorted(set(data.exclusive_org_ids))
    row.plans = sorted(set(data.plans))
    row.default = data.default
    row.updated_at = utcnow()
    db.add(row)
    record(
        db,
        action="feature.put",
        actor=actor.user,
        target_type="feature",
        target_id=key,
        ip=actor.ip,
        disabled=row.disabled,
        plans=row.plans,
        default=row.default,
        exclusive_users=len(row.exclusive_user_ids),
        exclusive_orgs=len(row.exclusive_org_ids),
    )
    await db.commit()
    return _out(key, row, actor.principal)


@delete("/api/v1/features/{key:str}", tags=["features"], status_code=HTTP_204_NO_CONTENT)
async def delete_feature(key: FeatureKey, actor: ActorDep, db: DB) -> None:
    """Remove a catalogue entry (platform admins); a built-in feature falls back to its plans."""
    require_platform_admin(actor.principal)
    row = await db.get(Feature, key)
    if row is None:
        raise _not_found()
    await db.delete(row)
    record(
        db,
        action="feature.delete",
        actor=actor.user,
        target_type="feature",
        target_id=key,
        ip=actor.ip,
    )
    await db.commit()


ROUTES = [list_features, explain, read_feature, put_feature, delete_feature]
