"""Creating and changing orgs: the rules of ``POST`` and ``PATCH /api/v1/orgs``.

Handlers call these with the caller's :class:`Principal`; each function checks what the
caller may do, writes the change and its audit event in one transaction, and commits.
"""

from __future__ import annotations

import unicodedata
from copy import copy
from typing import Any, Protocol

import msgspec
import structlog
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.db.models import Feature, Membership, Org, utcnow
from control_plane.features.plans import DEFAULT_PLAN, check_overrides, plan_named
from control_plane.orgs.access import OrgAccess, admin_source, governs, org_access
from control_plane.orgs.hierarchy import (
    check_parent_link,
    check_quota,
    descendant_ids,
    effective_features,
    effective_limits,
    own_quota,
)
from control_plane.orgs.schemas import CreateOrgBody, OrgOut, UpdateOrgBody
from control_plane.orgs.slugs import checked_slug
from control_plane.users.service import find_by_email
from control_plane.webhooks.events import emit, org_data
from orgplane_wire.problems import BadRequest, Conflict, Forbidden

log = structlog.get_logger("orgplane.orgs")


def checked_name(name: str) -> str:
    """``name`` verbatim, unless it is blank or holds control characters (400 ``invalid_name``)."""
    if not name.strip() or any(unicodedata.category(c) == "Cc" for c in name):
        raise BadRequest(
            "The name must not be blank or contain control characters.",
            code="invalid_name",
            field="name",
        )
    return name


async def org_out(
    db: AsyncSession, org: Org, role: str | None, *, catalogue: dict[str, Feature] | None = None
) -> OrgOut:
    """The API view of ``org`` with its effective features and limits (``catalogue``: the
    feature catalogue, when the caller loaded it once for many orgs)."""
    return OrgOut(
        id=org.id,
        slug=org.slug,
        name=org.name,
        plan=org.plan,
        parent_id=org.parent_id,
        phase=org.phase,
        reason=org.reason,
        desired_state=org.desired_state,
        suspended=org.suspended,
        deletion_locked=org.deletion_locked,
        delete_after=org.delete_after if org.delete_after else None,
        features=await effective_features(db, org, catalogue=catalogue),
        limits=await effective_limits(db, org),
        feature_overrides=dict(org.features),
        limit_overrides=dict(org.limits),
        config_version=org.config_version,
        generation=org.generation,
        created_at=org.created_at,
        updated_at=org.updated_at,
        role=role,
        require_access_approval=org.require_access_approval,
    )


async def _check_terms_within_parent(
    db: AsyncSession, *, parent: Org, plan: str, features: dict[str, bool]
) -> None:
    """Non-staff may not give a child a higher plan or a feature its parent lacks."""
    if plan_named(plan).rank > plan_named(parent.plan).rank:
        raise Forbidden(
            f"The plan {plan!r} is above the parent's plan {parent.plan!r}.",
            code="plan_exceeds_parent",
            field="plan",
        )
    available = set(await effective_features(db, parent))
    for key, enabled in features.items():
        if enabled and key not in available:
            raise Forbidden(
                f"The feature {key!r} is not enabled in the parent org.",
                code="feature_not_in_parent",
                field=f"features.{key}",
            )


async def _new_owner(db: AsyncSession, principal: Principal, owner_email: str | None) -> str:
    if owner_email is None:
        return principal.user.id
    if not principal.is_platform_admin:
        raise Forbidden(
            "Only platform admins may name another owner.",
            code="platform_admin_required",
            field="owner_email",
        )
    owner = await find_by_email(db, owner_email)
    if owner is None or owner.disabled:
        raise BadRequest(
            "No active user has that email.", code="owner_not_found", field="owner_email"
        )
    return owner.id


def slug_taken(slug: str) -> Conflict:
    """409 for a slug in use (by a live org, or a deleted one whose row remains)."""
    return Conflict(f"The slug {slug!r} is taken.", code="slug_taken", field="slug")


async def _parent_for_new_org(
    db: AsyncSession, principal: Principal, parent_ref: str | None
) -> Org | None:
    if parent_ref is None:
        return None
    access = await org_access(db, principal, parent_ref)
    access.require("admin", to="create child orgs")
    if access.org.delete_after is not None:
        raise Conflict("The parent org is pending deletion.", code="parent_pending_deletion",
                       field="parent_id")  # fmt: skip
    return access.org


async def _owner_derived_from(
    db: AsyncSession, principal: Principal, parent: Org | None, owner_id: str
) -> str | None:
    """The org whose admin membership the creator's owner membership of a new child derives
    from (None for a top-level org or one a platform admin creates): removed or demoted below
    admin there, the creator loses the child too (``members.service.drop_derived``)."""
    if parent is None or owner_id != principal.user.id or principal.is_platform_admin:
        return None
    return await admin_source(db, principal.user, parent)


async def _check_new_terms(
    db: AsyncSession, principal: Principal, parent: Org | None, plan: str, body: CreateOrgBody
) -> None:
    if principal.is_platform_admin:
        return
    if parent is not None:
        await _check_terms_within_parent(db, parent=parent, plan=plan, features=body.features)
    elif plan != DEFAULT_PLAN or body.features or body.limits:
        raise Forbidden(
            f"Only platform admins may create a top-level org with a plan other than "
            f"{DEFAULT_PLAN!r} or with overrides.",
            code="platform_admin_required",
        )


class SpareClaim(Protocol):
    """Takes a warm-pool spare for a new org of ``plan``: the spare's pre-chosen org id, or
    None when none is ready (``control_plane.capacity.spares.claim_spare``). The callers
    above orgs pass it in: orgs sit below the reconciler and never import it."""

    async def __call__(self, db: AsyncSession, *, plan: str) -> str | None: ...


async def create_org(
    db: AsyncSession,
    *,
    principal: Principal,
    body: CreateOrgBody,
    ip: str,
    claim_spare: SpareClaim,
    reserved: frozenset[str] = frozenset(),
) -> Org:
    """Create an org in phase ``pending`` with its owner; the reconciler provisions it later.
    ``claim_spare``: the warm pool's claim; ``reserved``: slugs the platform's settings keep
    (``slugs.platform_labels``)."""
    slug, name = checked_slug(body.slug, reserved=reserved), checked_name(body.name)
    check_overrides(features=body.features, limits=body.limits)
    parent = await _parent_for_new_org(db, principal, body.parent_id)
    plan = plan_named(body.plan or (parent.plan if parent else DEFAULT_PLAN)).name
    await _check_new_terms(db, principal, parent, plan, body)
    owner_id = await _new_owner(db, principal, body.owner_email)
    via = await _owner_derived_from(db, principal, parent, owner_id)
    if (await db.exec(select(Org.id).where(col(Org.slug) == slug))).first():
        raise slug_taken(slug)
    org = Org(slug=slug, name=name, plan=plan, parent_id=parent.id if parent else None,
              features=dict(body.features), limits=dict(body.limits))  # fmt: skip
    if parent is not None:
        await check_parent_link(db, parent=parent, child=None)
        await check_quota(db, parent, child_quota=own_quota(org))
    # A warm-pool spare started under a pre-chosen org id: taking the id makes it this org's
    # instance. The claim commits or rolls back with the org.
    spare_id = await claim_spare(db, plan=plan)
    if spare_id is not None:
        org.id = spare_id
    try:
        db.add(org)
        await db.flush()  # the org row first: the membership's foreign key points at it
        db.add(Membership(user_id=owner_id, org_id=org.id, role="owner", via_org_id=via))
        record(db, action="org.create", actor=principal.user, org_id=org.id, target_type="org",
               target_id=org.id, ip=ip, slug=slug, plan=plan, parent_id=org.parent_id,
               owner_id=owner_id)  # fmt: skip
        emit(db, "org.created", org_data(org, plan=plan, parent_id=org.parent_id))
        await db.commit()
    except IntegrityError:
        await db.rollback()
        # The pre-check lost a race: another request inserted the slug in between.
        if (await db.exec(select(Org.id).where(col(Org.slug) == slug))).first():
            log.info("slug race lost", slug=slug)
            raise slug_taken(slug) from None
        raise
    return org


async def _move(db: AsyncSession, principal: Principal, org: Org, parent_ref: str | None) -> None:
    if parent_ref is None:
        if not principal.is_platform_admin:
            raise Forbidden(
                "Only platform admins may make an org top-level.",
                code="platform_admin_required",
                field="parent_id",
            )
        org.parent_id = None
        return
    target = await org_access(db, principal, parent_ref)
    target.require("admin", to="move orgs under it")
    await check_parent_link(db, parent=target.org, child=org)
    org.parent_id = target.org.id


_TERMS = ("plan", "features", "limits", "parent_id")


async def update_org(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, body: UpdateOrgBody, ip: str
) -> Org:
    """Rename, re-plan, override, or move an org; bumps ``config_version`` when an instance
    must pick the change up (its own and every descendant's, whose effective values follow)."""
    org, changes = access.org, dict[str, Any]()
    if body.name is not None:
        access.require("admin", to="rename the org")
        if body.name != org.name:
            changes["name"] = org.name = checked_name(body.name)
    # Terms sent unchanged (a form that posts every field) need no governance.
    asked = {"plan": body.plan, "features": body.features, "limits": body.limits,
             "parent_id": body.parent_id}  # fmt: skip
    governed = any(v not in (None, msgspec.UNSET, getattr(org, k)) for k, v in asked.items())
    if governed and not await governs(db, principal, org):
        raise Forbidden(
            "Only platform admins or admins of a parent org may change its plan, "
            "features, limits or parent.",
            code="parent_admin_required",
        )
    check_overrides(features=body.features or {}, limits=body.limits or {})
    before = {term: copy(getattr(org, term)) for term in _TERMS}
    if not isinstance(body.parent_id, msgspec.UnsetType):
        await _move(db, principal, org, body.parent_id)
    org.plan = plan_named(body.plan).name if body.plan is not None else org.plan
    org.features = dict(body.features) if body.features is not None else org.features
    org.limits = dict(body.limits) if body.limits is not None else org.limits
    terms = {t: getattr(org, t) for t in _TERMS if getattr(org, t) != before[t]}
    if terms:
        await _check_changed_terms(db, principal, org)
        await bump_config(db, org)
    if not (changes or terms):
        return org
    org.updated_at = utcnow()
    db.add(org)
    record(db, action="org.update", actor=principal.user, org_id=org.id, target_type="org",
           target_id=org.id, ip=ip, changes={**changes, **terms})  # fmt: skip
    await db.commit()
    return org


async def _check_changed_terms(db: AsyncSession, principal: Principal, org: Org) -> None:
    parent = await db.get(Org, org.parent_id) if org.parent_id else None
    if parent is not None:
        if not principal.is_platform_admin:
            await _check_terms_within_parent(
                db, parent=parent, plan=org.plan, features=org.features
            )
        await check_quota(db, parent, child=org, child_quota=own_quota(org))
    await check_quota(db, org, parent_limits=await effective_limits(db, org))


async def bump_config(db: AsyncSession, org: Org) -> None:
    """Bump ``config_version`` of ``org`` and of every descendant (their effective values
    follow it), so each instance picks the change up at its next heartbeat."""
    org.config_version += 1
    below = await descendant_ids(db, [org.id])
    if below:
        await db.exec(
            update(Org)
            .where(col(Org.id).in_(below))
            .values(config_version=col(Org.config_version) + 1, updated_at=utcnow())
            .execution_options(synchronize_session="fetch")
        )
