"""The rollouts API (platform admins): create, list, read, pause, resume, roll back.

Bad input is a 400 problem with a stable code and writes nothing: ``unknown_version``,
``same_version``, ``invalid_target``, ``unknown_plan``, ``unknown_org``, ``empty_target``,
``invalid_wave_spec``; a rollout over an org that an active rollout holds is 409
``rollout_active`` (``control_plane.fleet.overlap``), an action in the wrong state 409
``rollout_state``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy import func
from sqlmodel import col, select

from control_plane.audit_trail import record
from control_plane.auth import require_platform_admin
from control_plane.client_ip import client_ip
from control_plane.db.fleet_models import InstanceVersion, Rollout, RolloutOrg
from control_plane.db.models import Org, new_id, utcnow
from control_plane.deps import DB, Caller
from control_plane.fleet.overlap import refuse_overlap, serialise_creation
from control_plane.fleet.plan import add_rows, plan_orgs, wave_sizes
from control_plane.fleet.registry import find_version
from control_plane.fleet.steps import FAILED
from orgplane_wire.problems import BadRequest, Conflict, NotFound

Wave = int | str


class TargetBody(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["all", "plan", "subtree", "orgs", "percent"]
    plan: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    parent: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    orgs: (
        Annotated[
            list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=10_000)
        ]
        | None
    ) = None
    percent: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


class RolloutBody(msgspec.Struct, forbid_unknown_fields=True):
    to_version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    target: TargetBody
    from_version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    waves: list[Wave] = msgspec.field(default_factory=lambda: [1, "25%", "100%"])
    max_concurrent: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    health_deadline_seconds: Annotated[int, msgspec.Meta(ge=5, le=86_400)] = 300
    failure_threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    on_older_schema: Literal["restore", "refuse"] = "refuse"


class ReasonBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class RolloutOrgOut(msgspec.Struct):
    org_id: str
    slug: str
    wave: int | None
    state: str
    reason: str
    from_image: str
    backup_id: str | None
    started_at: datetime | None
    finished_at: datetime | None


class RolloutOut(msgspec.Struct):
    id: str
    state: str
    reason: str
    from_version: str | None
    to_version: str
    target: dict[str, Any]
    waves: list[Any]
    wave_count: int
    current_wave: int
    max_concurrent: int
    health_deadline_seconds: int
    failure_threshold: float
    on_older_schema: str
    counts: dict[str, int]
    created_at: datetime
    finished_at: datetime | None
    orgs: list[RolloutOrgOut] | None = None


async def _out(db: DB, rollout: Rollout, *, with_orgs: bool) -> RolloutOut:
    names = dict((await db.exec(select(InstanceVersion.id, InstanceVersion.name))).all())
    counts_q = (
        select(RolloutOrg.state, func.count())
        .where(col(RolloutOrg.rollout_id) == rollout.id)
        .group_by(col(RolloutOrg.state))
    )
    counts = {state: int(n) for state, n in (await db.exec(counts_q)).all()}
    orgs = None
    if with_orgs:
        query = (
            select(RolloutOrg, Org.slug)
            .join(Org, col(Org.id) == col(RolloutOrg.org_id))
            .where(col(RolloutOrg.rollout_id) == rollout.id)
            .order_by(col(RolloutOrg.id))
        )
        orgs = [
            RolloutOrgOut(
                org_id=r.org_id,
                slug=slug,
                wave=r.wave,
                state=r.state,
                reason=r.reason,
                from_image=r.from_image,
                backup_id=r.backup_id or None,
                started_at=r.started_at,
                finished_at=r.finished_at,
            )
            for r, slug in (await db.exec(query)).all()
        ]
    return RolloutOut(
        id=rollout.id,
        state=rollout.state,
        reason=rollout.reason,
        from_version=names.get(rollout.from_version_id or ""),
        to_version=names.get(rollout.to_version_id, rollout.to_version_id),
        target=rollout.target,
        waves=rollout.waves,
        wave_count=rollout.wave_count,
        current_wave=rollout.current_wave,
        max_concurrent=rollout.max_concurrent,
        health_deadline_seconds=rollout.health_deadline_seconds,
        failure_threshold=rollout.failure_threshold,
        on_older_schema=rollout.on_older_schema,
        counts=counts,
        created_at=rollout.created_at,
        finished_at=rollout.finished_at,
        orgs=orgs,
    )


def _check_target(target: TargetBody) -> dict[str, Any]:
    needs = {
        "plan": target.plan,
        "subtree": target.parent,
        "orgs": target.orgs,
        "percent": target.percent,
    }
    if target.kind in needs and not needs[target.kind]:
        field = {"subtree": "parent"}.get(target.kind, target.kind)
        raise BadRequest(
            f"A {target.kind!r} target needs its {field!r}.",
            code="invalid_target",
            field=f"target.{field}",
        )
    return {k: v for k, v in msgspec.to_builtins(target).items() if v is not None}


async def _version(db: DB, ref: str, field: str) -> InstanceVersion:
    try:
        return await find_version(db, ref)
    except NotFound:
        raise BadRequest(
            f"No version {ref!r} is registered.", code="unknown_version", field=field
        ) from None


@post("/api/v1/rollouts", tags=["fleet"], status_code=HTTP_201_CREATED)
async def create_rollout(
    request: Request[Any, Any, Any], data: JSONBody[RolloutBody], principal: Caller, db: DB
) -> RolloutOut:
    """Start a staged rollout (platform admins); the reconciler loop drives it."""
    require_platform_admin(principal)
    target = _check_target(data.target)
    to = await _version(db, data.to_version, "to_version")
    source = await _version(db, data.from_version, "from_version") if data.from_version else None
    if source is not None and source.id == to.id:
        raise BadRequest(
            "from_version and to_version are the same.", code="same_version", field="from_version"
        )
    wave_sizes(data.waves, 1)  # the spec's own shape, before any org is looked at
    await serialise_creation(db)
    rollout_id = new_id()
    planned = await plan_orgs(db, rollout_id=rollout_id, target=target, to=to, source=source)
    await refuse_overlap(db, [org.id for org, _ in planned.moved])
    sizes = wave_sizes(data.waves, len(planned.moved))
    rollout = Rollout(
        id=rollout_id,
        from_version_id=source.id if source else None,
        to_version_id=to.id,
        target=target,
        waves=list(data.waves),
        wave_count=len(sizes),
        max_concurrent=data.max_concurrent,
        health_deadline_seconds=data.health_deadline_seconds,
        failure_threshold=data.failure_threshold,
        on_older_schema=data.on_older_schema,
        created_by=principal.user.id,
    )
    db.add(rollout)
    await db.flush()
    add_rows(db, rollout, planned, sizes)
    record(
        db,
        action="rollout.create",
        actor=principal.user,
        target_type="rollout",
        target_id=rollout.id,
        ip=client_ip(request),
        to_version=to.name,
        orgs=len(planned.moved),
        skipped=len(planned.skipped),
        wave_sizes=sizes,
    )
    await db.commit()
    _wake(request)
    return await _out(db, rollout, with_orgs=False)


@get("/api/v1/rollouts", tags=["fleet"])
async def list_rollouts(principal: Caller, db: DB) -> dict[str, list[RolloutOut]]:
    """Rollouts, newest first (the last 100)."""
    require_platform_admin(principal)
    query = select(Rollout).order_by(col(Rollout.created_at).desc()).limit(100)
    return {"items": [await _out(db, r, with_orgs=False) for r in (await db.exec(query)).all()]}


async def _rollout(db: DB, rollout_id: str) -> Rollout:
    rollout = await db.get(Rollout, rollout_id) if len(rollout_id) == 32 else None
    if rollout is None:
        raise NotFound("No such rollout.", code="rollout_not_found")
    return rollout


@get("/api/v1/rollouts/{rollout_id:str}", tags=["fleet"])
async def get_rollout(rollout_id: FromPath[str], principal: Caller, db: DB) -> RolloutOut:
    """A rollout with each org's state and reason."""
    require_platform_admin(principal)
    return await _out(db, await _rollout(db, rollout_id), with_orgs=True)


_ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "rollback": (("running", "paused"), "rolling_back"),
}


@post("/api/v1/rollouts/{rollout_id:str}/{action:str}", tags=["fleet"], status_code=200)
async def rollout_action(
    request: Request[Any, Any, Any],
    rollout_id: FromPath[str],
    action: FromPath[str],
    principal: Caller,
    db: DB,
    data: JSONBody[ReasonBody | None] = None,
) -> RolloutOut:
    """``pause``, ``resume`` (the current wave's failures so far are accepted) or
    ``rollback`` (every upgraded org back to its previous version)."""
    require_platform_admin(principal)
    if action not in _ACTIONS:
        raise NotFound("No such rollout action.", code="not_found")
    rollout = await _rollout(db, rollout_id)
    allowed, new_state = _ACTIONS[action]
    if rollout.state not in allowed:
        raise Conflict(
            f"A {rollout.state} rollout cannot {action}.", code="rollout_state", state=rollout.state
        )
    if action == "resume":
        failed = await db.exec(
            select(func.count()).where(
                col(RolloutOrg.rollout_id) == rollout.id,
                col(RolloutOrg.wave) == rollout.current_wave,
                col(RolloutOrg.state).in_(FAILED),
            )
        )
        rollout.failures_accepted = int(failed.one())
    reason = (data.reason if data else "") or f"{action} by {principal.user.email}"
    rollout.state, rollout.reason, rollout.updated_at = new_state, reason, utcnow()
    db.add(rollout)
    record(
        db,
        action=f"rollout.{action}",
        actor=principal.user,
        target_type="rollout",
        target_id=rollout.id,
        ip=client_ip(request),
        reason=reason,
    )
    await db.commit()
    _wake(request)
    return await _out(db, rollout, with_orgs=False)


def _wake(request: Request[Any, Any, Any]) -> None:
    reconciler = getattr(request.app.state, "reconciler", None)
    if reconciler is not None:
        reconciler.wake()


ROUTES = [create_rollout, list_rollouts, get_rollout, rollout_action]
