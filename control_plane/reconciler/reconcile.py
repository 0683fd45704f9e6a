"""Converging one org: compare what the database wants with what the backend reports, and take
the next step. Every step is idempotent and committed before the next one starts, so a crash
anywhere (see ``faults.py``) is finished by a later pass.

Phases (``Org.phase``): pending -> provisioning -> starting -> running <-> unhealthy;
running -> stopping -> stopped; any -> deleting -> deleted; provisioning|starting -> failed (kept
reason, retried with backoff); running -> hibernated -> (first request) pending -> ... -> running
(see ``hibernation.py``). ``running`` needs the backend's word AND a heartbeat of this run
within three heartbeat intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.branding.service import forget_branding
from control_plane.capacity.admission import queue_position, queued_reason
from control_plane.capacity.spares import (
    assign_claimed_spare,
)
from control_plane.db.models import Instance, Org, utcnow
from control_plane.db.phases import BUSY, SERVING, DesiredState, OrgPhase
from control_plane.instances.heartbeat import issue_instance_credential
from control_plane.orgs.events import add_event, set_phase
from control_plane.orgs.hierarchy import ancestor_hold
from control_plane.orgs.images import contract_refusal
from control_plane.reconciler.faults import fault_point
from control_plane.reconciler.spec import build_spec
from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user
from control_plane.routing.handover import Probe, handover_probe
from control_plane.routing.hibernation import hibernation_step
from control_plane.routing.hostnames import release_domains
from control_plane.runtime import Runtime, resolve_secret
from orgplane_wire.contract import longest_heartbeat_gap
from provisioners.base import InstanceStatus, Provisioner
from provisioners.errors import ProvisionerError, UnsupportedOperationError

log = structlog.get_logger("orgplane.reconciler")

MAX_BACKOFF = 300.0


@dataclass
class Context:
    """What one reconcile step needs besides the database."""

    runtime: Runtime
    provisioner: Provisioner
    redis_admin: Any = None  # redis.asyncio.Redis with ACL rights, when orgs get Redis users
    redis_host: str = ""  # host instances reach Redis at, when it differs from ours
    #: When this replica began hearing heartbeats: silence before it is not evidence.
    watching_since: datetime = field(default_factory=utcnow)
    #: Sees through Traefik that a hibernating org's hosts reach the wake endpoint (made on
    #: first use when ``ORGPLANE_PROXY_URL`` is set: :func:`probe_of`).
    handover_probe: Probe | None = None


def probe_of(ctx: Context) -> Probe | None:
    """The context's hibernation handover probe, if the proxy's URL is set."""
    settings = ctx.runtime.settings
    if ctx.handover_probe is None and settings.routing.proxy_url:
        ctx.handover_probe = handover_probe(settings, secret=resolve_secret(settings))
    return ctx.handover_probe


def desired_state(org: Org, *, held: str = "") -> DesiredState:
    """What the reconciler converges on; ``held``: why an ancestor holds the org back."""
    if org.desired_state == DesiredState.DELETED:
        return DesiredState.DELETED
    if org.suspended or held or org.desired_state == DesiredState.STOPPED:
        return DesiredState.STOPPED
    return DesiredState.RUNNING


def heartbeat_fresh(ctx: Context, instance: Instance, now: datetime) -> bool:
    """A heartbeat of the current run arrived within three intervals."""
    seen, started = instance.last_heartbeat_at, instance.started_at
    window = timedelta(seconds=3 * ctx.runtime.settings.provisioning.heartbeat_interval)
    return seen is not None and now - seen <= window and (started is None or seen >= started)


async def ensure_instance_row(ctx: Context, db: AsyncSession, org: Org) -> Instance:
    """The org's Instance row, created on first sight."""
    instance = await db.get(Instance, org.id)
    if instance is None:
        instance = Instance(org_id=org.id, provisioner=ctx.provisioner.name or "unknown")
        db.add(instance)
        await db.commit()
    return instance


async def reconcile_org(
    ctx: Context, db: AsyncSession, *, org_id: str, observed: InstanceStatus | bool | None = True
) -> None:
    """One step towards the org's desired state. ``observed=True`` asks the backend."""
    org = await db.get(Org, org_id)
    if org is None or org.deleted_at is not None:
        return
    instance = await ensure_instance_row(ctx, db, org)
    fault_point("after_claim", org_slug=org.slug)
    status = await ctx.provisioner.status(org_id=org_id) if observed is True else observed
    assert status is None or isinstance(status, InstanceStatus)
    held = await ancestor_hold(db, org)
    desired = desired_state(org, held=held)
    if desired == DesiredState.DELETED:
        await _delete(ctx, db, org, instance)
    elif desired == DesiredState.STOPPED:
        await _stop(ctx, db, org, instance, status, held=held)
    elif not await hibernation_step(
        db,
        org,
        instance,
        status,
        provisioner=ctx.provisioner,
        hibernate_after=ctx.runtime.settings.provisioning.hibernate_after,
        routing=ctx.runtime.routing,
        probe=probe_of(ctx),
    ):
        await _run(ctx, db, org, instance, status)
    instance.phase = org.phase
    instance.checked_at = instance.updated_at = utcnow()
    db.add(instance)
    await db.commit()


def _needs_apply(org: Org, instance: Instance, status: InstanceStatus | None) -> bool:
    if status is None or status.state in ("absent", "stopped", "failed"):
        return True
    return instance.observed_generation != org.generation


async def _run(
    ctx: Context, db: AsyncSession, org: Org, instance: Instance, status: InstanceStatus | None
) -> None:
    now = utcnow()
    if _needs_apply(org, instance, status):
        next_try = instance.next_attempt_at
        if next_try is not None and now < next_try:
            return
        limit = ctx.runtime.settings.provisioning.max_concurrent_provisioning
        position = None if org.phase in BUSY else await queue_position(db, org, limit=limit)
        if position is not None:
            # Moving up the queue is not a timeline event; starting to wait is.
            set_phase(
                db,
                org,
                OrgPhase.PENDING,
                queued_reason(position),
                event=org.phase != OrgPhase.PENDING,
            )
            return
        await _provision(ctx, db, org, instance)
        return
    assert status is not None
    # A heartbeat of this run is the instance's own word that it is ready: it outranks a
    # backend health check that has not run yet (Docker's first comes after a full interval).
    fresh = heartbeat_fresh(ctx, instance, now)
    if status.state == "creating" or (status.state == "starting" and not fresh):
        set_phase(db, org, OrgPhase.STARTING, status.message or "the instance is starting")
    elif fresh:
        instance.health, instance.attempts = "ok", 0
        set_phase(db, org, OrgPhase.RUNNING)
        fault_point("after_running", org_slug=org.slug)
    elif org.phase in SERVING:
        await _unhealthy(ctx, db, org, instance, now)
    else:
        started = instance.started_at or now
        if (now - started).total_seconds() > ctx.runtime.settings.provisioning.start_timeout:
            _failed(db, org, instance, "no heartbeat arrived within the start timeout")
            await _restart(ctx, db, org)
        else:
            set_phase(db, org, OrgPhase.STARTING, "waiting for the first heartbeat")


async def _provision(ctx: Context, db: AsyncSession, org: Org, instance: Instance) -> None:
    box = ctx.runtime.box
    set_phase(db, org, OrgPhase.PROVISIONING, "creating the instance")
    await db.commit()
    if not instance.credential_enc:
        credential = await issue_instance_credential(db, org_id=org.id)
        instance.credential_enc = box.encrypt(credential.encode())
        db.add(instance)
        await db.commit()
        fault_point("after_credential", org_slug=org.slug)
    if ctx.redis_admin is not None and not instance.redis_url_enc:
        url = await ensure_org_redis_user(
            ctx.redis_admin, org_id=org.id, host=ctx.redis_host or None
        )
        instance.redis_url_enc = box.encrypt(url.encode())
        db.add(instance)
        await db.commit()
        fault_point("after_redis_user", org_slug=org.slug)
    spec = await build_spec(ctx.runtime, db, org=org, instance=instance)
    refusal = contract_refusal(spec.image, ctx.runtime.settings.provisioning)
    if refusal:
        _refuse_image(db, org, instance, spec.image, refusal)
        return
    fault_point("before_apply", org_slug=org.slug)
    # Before the assignment: a claimed spare sends its first heartbeat before it answers.
    launched_at = utcnow()
    try:
        assigned = await assign_claimed_spare(
            ctx.runtime, db, provisioner=ctx.provisioner, org=org, spec=spec
        )
        if assigned is not None:
            # The spare runs as the org now; its routes and policies become the org's. A
            # failure here retries the org as a cold apply (the spare's row is gone).
            await ctx.provisioner.adopt(spec=spec)
        status = assigned or await ctx.provisioner.apply(spec=spec)
    except ProvisionerError as exc:
        _failed(db, org, instance, f"backend error: {exc}")
        return
    fault_point("after_apply", org_slug=org.slug)
    instance.observed_generation = org.generation
    instance.endpoint, instance.handle = status.endpoint, dict(status.handle)
    instance.image, instance.next_attempt_at = spec.image, None
    instance.started_at = launched_at if assigned else utcnow()
    instance.provisioner = ctx.provisioner.name or instance.provisioner
    add_event(db, org_id=org.id, kind="instance.applied", message=f"image {spec.image}")
    set_phase(db, org, OrgPhase.STARTING, "waiting for the first heartbeat")


def _refuse_image(db: AsyncSession, org: Org, instance: Instance, image: str, refusal: str) -> None:
    """Leave the backend alone: the image speaks no contract version this control plane
    supports. The org's timeline and the audit log hear it once per refusal, not per retry."""
    reason = f"not deployed: {refusal}"
    if instance.last_error != reason:
        add_event(db, org_id=org.id, kind="image.refused", message=reason)
        record(
            db,
            action="instance.image_refused",
            outcome="denied",
            org_id=org.id,
            target_type="instance",
            target_id=org.id,
            by="reconciler",
            code="image_contract_unsupported",
            image=image,
        )
    _failed(db, org, instance, reason)


def _failed(db: AsyncSession, org: Org, instance: Instance, reason: str) -> None:
    instance.attempts += 1
    delay = min(2.0**instance.attempts, MAX_BACKOFF)
    instance.next_attempt_at = utcnow() + timedelta(seconds=delay)
    instance.last_error = reason[:2000]
    set_phase(db, org, OrgPhase.FAILED, f"{reason} (retry {instance.attempts} in {delay:.0f}s)")
    log.warning("provisioning failed", org_id=org.id, reason=reason, attempt=instance.attempts)


def _silent_for(ctx: Context, seen: datetime, now: datetime) -> float:
    """Seconds of silence this replica could have heard. Beats sent while no replica ran
    (a control-plane outage) were never received, and the instance, backing off, may retry
    only a full backoff after the return: without this, every instance of the platform would
    be restarted as soon as the control plane came back from an outage longer than
    ``unhealthy_restart_after``."""
    gap = longest_heartbeat_gap(ctx.runtime.settings.provisioning.heartbeat_interval)
    heard_from = ctx.watching_since + timedelta(seconds=gap)
    return (now - max(seen, heard_from)).total_seconds()


async def _unhealthy(
    ctx: Context, db: AsyncSession, org: Org, instance: Instance, now: datetime
) -> None:
    seen = instance.last_heartbeat_at or instance.started_at or now
    silent = (now - seen).total_seconds()
    instance.health = "stale"
    set_phase(db, org, OrgPhase.UNHEALTHY, f"no heartbeat for {silent:.0f}s")
    if _silent_for(ctx, seen, now) > ctx.runtime.settings.provisioning.unhealthy_restart_after:
        await _restart(ctx, db, org)
        instance.started_at = utcnow()


async def _restart(ctx: Context, db: AsyncSession, org: Org) -> None:
    add_event(db, org_id=org.id, kind="instance.restart", message="restarting the instance")
    try:
        await ctx.provisioner.restart(org_id=org.id)
    except UnsupportedOperationError:
        await ctx.provisioner.remove(org_id=org.id, keep_data=True)
    except ProvisionerError as exc:
        add_event(db, org_id=org.id, kind="instance.restart_failed", message=str(exc))


async def _stop(
    ctx: Context,
    db: AsyncSession,
    org: Org,
    instance: Instance,
    status: InstanceStatus | None,
    *,
    held: str,
) -> None:
    reason = "suspended" if org.suspended else (held or "stopped on request")
    if status is not None and status.state not in ("absent", "stopped"):
        set_phase(db, org, OrgPhase.STOPPING, reason)
        await db.commit()
        try:
            await ctx.provisioner.stop(org_id=org.id)
        except UnsupportedOperationError:
            await ctx.provisioner.remove(org_id=org.id, keep_data=True)
    instance.observed_generation = org.generation
    set_phase(db, org, OrgPhase.STOPPED, reason)


async def _delete(ctx: Context, db: AsyncSession, org: Org, instance: Instance) -> None:
    # Route first: an org that is not running has no route, so the phase change removes it.
    set_phase(db, org, OrgPhase.DELETING, "removing the route, the instance and its data")
    await db.commit()
    fault_point("before_remove", org_slug=org.slug)
    await ctx.provisioner.remove(org_id=org.id, keep_data=False)
    fault_point("after_remove", org_slug=org.slug)
    if ctx.redis_admin is not None:
        await delete_org_redis_user(ctx.redis_admin, org_id=org.id)
        fault_point("after_redis_delete", org_slug=org.slug)
    await release_domains(db, org_id=org.id)
    await forget_branding(db, org_id=org.id)
    instance.credential_hash = instance.credential_enc = instance.redis_url_enc = ""
    instance.endpoint = ""
    org.deleted_at = utcnow()
    set_phase(db, org, OrgPhase.DELETED, "")
