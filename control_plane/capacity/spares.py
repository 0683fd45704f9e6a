"""Warm-pool spares one at a time: the spec a spare starts from, claiming one for a new org, and
assigning it to that org over HTTP.

A spare is an ordinary instance whose org id is chosen in advance (``Spare.id``): every backend
names, labels and finds its objects by that id, so once an org takes the id the spare *is* the
org's instance for status, list, restart and remove, with nothing renamed. See the "Warm pool"
section of docs/architecture.md.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import structlog
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane import __version__
from control_plane.db.models import Org, Spare
from control_plane.features.plans import DEFAULT_PLAN, PLAN_RESOURCES
from control_plane.orgs.events import add_event
from control_plane.runtime import Runtime
from orgplane_wire import contract
from orgplane_wire.contract import Env
from provisioners.base import BACKEND_ENV_NAMES, InstanceSpec, InstanceStatus, Provisioner
from provisioners.probe import instance_client

log = structlog.get_logger("orgplane.pool")

#: Label on a spare's objects (informative: ownership still comes from the org-id label).
SPARE_LABEL = "orgplane.spare"
#: Seconds an assignment may take (the spare opens the org's database and starts heartbeats).
ASSIGN_TIMEOUT = 10.0
#: Ready spares tried per claim before giving up (concurrent creates race for the oldest).
CLAIM_ATTEMPTS = 5


def fits_plan(plan: str) -> bool:
    """Whether a spare (started with the default plan's resources) can serve ``plan``."""
    resources = PLAN_RESOURCES.get(plan, PLAN_RESOURCES["free"])
    return resources == PLAN_RESOURCES.get(DEFAULT_PLAN, PLAN_RESOURCES["free"])


def spare_spec(runtime: Runtime, *, spare_id: str, secret: str) -> InstanceSpec:
    """The spec of a spare: pool mode (a pool secret, no org configuration), default plan."""
    return InstanceSpec(
        org_id=spare_id,
        slug=f"spare-{spare_id[:8]}",
        instance_id=spare_id,
        image=runtime.settings.provisioning.instance_image,
        env={Env.POOL_SECRET: secret, Env.ORG_ID: spare_id, Env.VERSION: __version__},
        resources=PLAN_RESOURCES.get(DEFAULT_PLAN, PLAN_RESOURCES["free"]),
        labels={SPARE_LABEL: "1"},
    )


def new_pool_secret() -> str:
    """A fresh secret for one spare."""
    return secrets.token_urlsafe(32)


async def claim_spare(db: AsyncSession, *, plan: str) -> str | None:
    """Take a ready spare for a new org of ``plan``; its id (the org's id to be) or None.

    A conditional UPDATE decides between concurrent creates, on any number of replicas: each
    spare goes to one org. Not committed here: the claim commits, or rolls back, with the org.
    """
    if not fits_plan(plan):
        return None
    oldest = (
        select(Spare.id)
        .where(col(Spare.state) == "ready")
        .order_by(col(Spare.created_at))
        .limit(CLAIM_ATTEMPTS)
    )
    for spare_id in (await db.exec(oldest)).all():
        taken = await db.exec(
            update(Spare)
            .where(col(Spare.id) == spare_id, col(Spare.state) == "ready")
            .values(state="claimed")
        )
        if taken.rowcount == 1:
            return spare_id
    return None


def org_environment(spec: InstanceSpec) -> dict[str, str]:
    """What a spare is told on assignment: the spec's environment minus the backend's part."""
    return {k: v for k, v in spec.env.items() if k not in BACKEND_ENV_NAMES}


async def _post_assignment(runtime: Runtime, spare: Spare, spec: InstanceSpec) -> str:
    """POST the assignment; returns "" when the spare is the org's now, else why not."""
    if not spare.endpoint:
        return "the spare has no endpoint"
    secret = runtime.box.decrypt(spare.pool_secret_enc).decode()
    body: contract.PoolAssignment = {"env": org_environment(spec)}
    try:
        async with instance_client(spare.endpoint, timeout=ASSIGN_TIMEOUT) as http:
            answer = await http.post(
                spare.endpoint.rstrip("/") + contract.POOL_ASSIGN_PATH,
                json=body,
                headers={"Authorization": f"Bearer {secret}"},
            )
    except (httpx.HTTPError, OSError) as exc:
        return f"the spare did not answer: {type(exc).__name__}"
    # 409: assigned already, and a spare takes only the org id it was started for, so it is this
    # org's (a crash after the POST, before its outcome was committed).
    if answer.status_code in (200, 409):
        return ""
    return f"the spare refused the assignment (HTTP {answer.status_code})"


async def assign_claimed_spare(
    runtime: Runtime, db: AsyncSession, *, provisioner: Provisioner, org: Org, spec: InstanceSpec
) -> InstanceStatus | None:
    """Make the spare claimed for ``org`` its instance; the status to record, or None.

    None when the org claimed no spare or the assignment failed: the caller applies ``spec``,
    which replaces the spare's objects (the spec differs) with the org's own, a cold start.
    The spare's row is deleted either way, in ``db``'s transaction.
    """
    spare = await db.get(Spare, org.id)
    if spare is None or spare.state != "claimed":
        return None
    if spare.provisioner != (provisioner.name or spare.provisioner):
        failure = f"the spare belongs to the {spare.provisioner} backend"
    elif spec.image != runtime.settings.provisioning.instance_image:
        failure = f"the org runs image {spec.image}, not the spares' default image"
    else:
        failure = await _post_assignment(runtime, spare, spec)
    await db.delete(spare)
    if failure:
        log.warning("spare assignment failed; starting cold", org_id=org.id, reason=failure)
        add_event(db, org_id=org.id, kind="pool.assign_failed", message=failure)
        return None
    add_event(db, org_id=org.id, kind="pool.assigned", message="a warm-pool spare took the org")
    return InstanceStatus(
        org_id=org.id, state="running", endpoint=spare.endpoint, handle=dict(spare.handle)
    )


def claimed_spares(org_id: str) -> Any:
    """SQL: how many unassigned spares ``org_id`` claimed (0 or 1)."""
    return (
        select(func.count())
        .select_from(Spare)
        .where(col(Spare.id) == org_id, col(Spare.state) == "claimed")
        .scalar_subquery()
    )


def warming_spares() -> Any:
    """SQL: how many spares are being started; they hold provisioning slots (admission
    control)."""
    return (
        select(func.count())
        .select_from(Spare)
        .where(col(Spare.state) == "warming")
        .scalar_subquery()
    )
