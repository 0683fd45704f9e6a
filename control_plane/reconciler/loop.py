"""The reconciler loop every control-plane replica runs.

A pass (1) finalises orgs whose deletion window has passed, (2) lists what the backend runs, in
one call, (3) picks the orgs that need work — changed since last observed, not in a steady
phase, missing heartbeats, or drifted from what the backend reports — and reconciles each under
a lease, several at once, then takes a step of every staged rollout it can lease
(``control_plane.fleet.engine``), and (4) removes backend objects labelled as ours whose org is gone
after a grace period. Work is proportional to what changed, not to the number of orgs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.capacity.admission import busy_slots, queued_reason
from control_plane.capacity.pool import WarmPool, spare_ids
from control_plane.db.models import Instance, Org, utcnow
from control_plane.db.phases import STEADY, DesiredState, OrgPhase
from control_plane.fleet.engine import drive_rollouts
from control_plane.instances.leases import claim, release
from control_plane.orgs.lifecycle import finalize_due_deletions
from control_plane.reconciler.housekeeping import run_housekeeping
from control_plane.reconciler.reconcile import Context, reconcile_org
from control_plane.routing.hibernation import due_condition
from control_plane.store_errors import log_job_failure
from provisioners.base import InstanceStatus
from provisioners.errors import ProvisionerError

log = structlog.get_logger("orgplane.reconciler")

MAX_PER_PASS = 500
HOUSEKEEPING_EVERY = 60.0


@dataclass
class PassReport:
    """What one pass did (for logs and tests)."""

    reconciled: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    #: Orgs the pass selected for work (the queue depth metric).
    selected: int = 0


class Reconciler:
    """Runs passes on an interval, or at once when woken by a write."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._orphans_seen: dict[str, float] = {}
        self._housekeeping_at = -HOUSEKEEPING_EVERY
        self.pool = WarmPool(ctx.runtime, ctx.provisioner)
        #: The queue (beyond the free slots) whose positions this replica last wrote.
        self._queue_written: list[str] = []

    def wake(self) -> None:
        """Start the next pass now (an org was written through this replica)."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Pass after pass until cancelled; errors are logged, never fatal.

        A pass woken by a write within an interval of the last full pass is *quick*: it works
        on the orgs the database says changed and asks the backend about those alone, so a new
        org does not wait for a listing of every instance (N inspects and probes on Docker).
        The next full pass does drift, orphans and the warm pool as usual."""
        interval = self.ctx.runtime.settings.provisioning.reconcile_interval
        last_full = -interval
        while True:
            self._wake.clear()
            full = time.monotonic() - last_full >= interval
            try:
                await self.run_pass(full=full)
                if full:
                    last_full = time.monotonic()
            except Exception as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log_job_failure("reconcile pass failed", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    async def run_pass(self, *, full: bool = True) -> PassReport:
        """One pass; see the module docstring (and :meth:`run_forever` for ``full``)."""
        started = time.perf_counter()
        report = await self._pass(full=full)
        metrics = self.ctx.runtime.metrics
        if metrics is not None:
            kind = "full" if full else "quick"
            metrics.reconcile_pass.labels(kind).observe(time.perf_counter() - started)
            metrics.reconcile_queue.set(report.selected)
        return report

    async def _pass(self, *, full: bool) -> PassReport:
        report = PassReport()
        async with self.ctx.runtime.sessions() as db:
            await finalize_due_deletions(db)
            await db.commit()
        await self._housekeeping()
        if not full:
            org_ids, _ = await self._candidates(None)
            report.selected = len(org_ids)
            await self._reconcile_all(org_ids, None, report)
            await self._rollouts()
            return report
        listed_at = utcnow()
        try:
            observed: dict[str, InstanceStatus] | None = {
                s.org_id: s for s in await self.ctx.provisioner.list()
            }
        except ProvisionerError as exc:
            log.warning("backend list failed", error=str(exc))
            observed = None
        org_ids, known = await self._candidates(observed)
        report.selected = len(org_ids)
        await self._reconcile_all(org_ids, observed, report)
        await self._rollouts()
        try:  # after the orgs: a new org never waits for spares to start
            await self.pool.maintain(observed=observed, listed_at=listed_at)
        except Exception as exc:
            log_job_failure("warm pool upkeep failed", exc)
        if observed is not None:
            await self._remove_orphans(observed, known, report)
        return report

    async def _rollouts(self) -> None:
        """A step of every staged rollout this replica can lease, after the orgs (so an org this
        pass saw running passes its gate now); a step that moved an org starts the next pass."""
        try:
            if await drive_rollouts(self.ctx.runtime):
                self.wake()
        except Exception as exc:
            log_job_failure("rollouts step failed", exc)

    async def _reconcile_all(
        self, org_ids: list[str], observed: dict[str, InstanceStatus] | None, report: PassReport
    ) -> None:
        limit = asyncio.Semaphore(
            max(1, self.ctx.runtime.settings.provisioning.max_concurrent_provisioning)
        )

        async def one(org_id: str) -> None:
            async with limit:
                await self._reconcile_leased(org_id, observed, report)

        await asyncio.gather(*(one(org_id) for org_id in org_ids))

    async def _housekeeping(self) -> None:
        """Once a minute, the jobs of ``reconciler/housekeeping.py``, each on its own."""
        now = time.monotonic()
        if now - self._housekeeping_at < HOUSEKEEPING_EVERY:
            return
        self._housekeeping_at = now
        await run_housekeeping(self.ctx)

    async def _candidates(
        self, observed: dict[str, InstanceStatus] | None
    ) -> tuple[list[str], set[str]]:
        """The orgs this pass works on, and (full passes only) every live org's id.

        A pass skips the orgs already queued for a provisioning slot beyond the slots free
        now: in a burst of 50 orgs, re-deciding one by one that 42 of them still wait cost each
        pass a lease, a count and a commit apiece, and their timelines an event for every
        step forward. Their queue positions are refreshed in one statement
        (:func:`_refresh_queue`) when the queue moved since this replica last wrote it, and on
        every full pass (another replica may have moved it). A queued org suspended, stopped or
        deleted meanwhile has left ``desired_state == "running"`` or the live orgs, so it is not
        skipped."""
        settings = self.ctx.runtime.settings
        stale = utcnow() - timedelta(seconds=3 * settings.provisioning.heartbeat_interval)
        async with self.ctx.runtime.sessions() as db:
            rows = (
                (
                    await db.exec(select(Org.id, Org.phase).where(col(Org.deleted_at).is_(None)))
                ).all()
                if observed is not None
                else []
            )
            changed_rows = (
                await db.exec(
                    select(Org.id, Org.phase, Org.desired_state, Instance.org_id)
                    .join(Instance, col(Instance.org_id) == col(Org.id), isouter=True)
                    .where(
                        col(Org.deleted_at).is_(None),
                        or_(
                            col(Instance.org_id).is_(None),
                            col(Instance.observed_generation) != col(Org.generation),
                            col(Org.phase).not_in(STEADY),
                            (col(Org.phase) == OrgPhase.RUNNING)
                            & (col(Instance.last_heartbeat_at) < stale),
                            due_condition(
                                hibernate_after=settings.provisioning.hibernate_after,
                                now=utcnow(),
                            ),
                        ),
                    )
                    .order_by(col(Org.created_at), col(Org.id))
                )
            ).all()
            queued = [
                org_id
                for org_id, phase, desired, instance in changed_rows
                if phase == OrgPhase.PENDING and desired == DesiredState.RUNNING and instance
            ]
            skip: set[str] = set()
            if observed is None:
                skip = await self._awaiting_first_heartbeat(db)
            if queued:
                limit = settings.provisioning.max_concurrent_provisioning
                free = max(0, limit - await busy_slots(db))
                waiting = queued[free:]
                skip |= set(waiting)
                if observed is not None or waiting != self._queue_written:
                    await _refresh_queue(db, waiting)
                    self._queue_written = waiting
            else:
                self._queue_written = []
        changed = {row[0] for row in changed_rows} - skip
        known = {row[0] for row in rows}
        if observed is not None:
            for org_id, phase in rows:
                seen = observed.get(org_id)
                running = seen is not None and seen.state in ("running", "starting", "creating")
                asleep = phase in (OrgPhase.STOPPED, OrgPhase.HIBERNATED)
                if (phase == OrgPhase.RUNNING and not running) or (asleep and running):
                    changed.add(org_id)
        return sorted(changed)[:MAX_PER_PASS], known

    @staticmethod
    async def _awaiting_first_heartbeat(db: AsyncSession) -> set[str]:
        """Orgs started (this generation) whose instance has not sent a heartbeat of its run:
        nothing a quick pass could change for them (their first heartbeat wakes the loop), and
        asking the backend costs a status call and a readiness probe each, on every wake. The
        next full pass checks them for crashes and the start timeout."""
        rows = await db.exec(
            select(Org.id)
            .join(Instance, col(Instance.org_id) == col(Org.id))
            .where(
                col(Org.phase) == OrgPhase.STARTING,
                col(Org.desired_state) == DesiredState.RUNNING,
                col(Instance.observed_generation) == col(Org.generation),
                or_(
                    col(Instance.last_heartbeat_at).is_(None),
                    col(Instance.last_heartbeat_at) < col(Instance.started_at),
                ),
            )
        )
        return set(rows.all())

    async def _reconcile_leased(
        self, org_id: str, observed: dict[str, InstanceStatus] | None, report: PassReport
    ) -> None:
        runtime = self.ctx.runtime
        async with runtime.sessions() as db:
            org = await db.get(Org, org_id)
            if org is None:
                return
            if await db.get(Instance, org_id) is None:
                db.add(Instance(org_id=org_id, provisioner=self.ctx.provisioner.name or "unknown"))
                try:
                    await db.commit()
                except Exception:
                    await db.rollback()  # another replica created it first
            owner = runtime.replica_id
            if not await claim(
                db, org_id=org_id, owner=owner, seconds=runtime.settings.provisioning.lease_seconds
            ):
                return
            try:
                status: InstanceStatus | bool | None = (
                    True if observed is None else observed.get(org_id)
                )
                await reconcile_org(self.ctx, db, org_id=org_id, observed=status)
                report.reconciled.append(org_id)
            except Exception as exc:
                await db.rollback()
                report.errors[org_id] = str(exc)
                log_job_failure("reconcile failed", exc, org_id=org_id)
            finally:
                # Caught here so a failure to release (a shutdown cancelling mid-commit) never
                # masks the exception in flight; an unreleased lease simply expires.
                try:
                    await release(db, org_id=org_id, owner=owner)
                except Exception:
                    log.warning("lease not released; it will expire", org_id=org_id)

    async def _remove_orphans(
        self, observed: dict[str, InstanceStatus], known: set[str], report: PassReport
    ) -> None:
        grace = self.ctx.runtime.settings.provisioning.orphan_grace_seconds
        now = time.monotonic()
        orphans = set(observed) - known
        if orphans:  # spares with a row belong to the warm pool
            async with self.ctx.runtime.sessions() as db:
                orphans -= await spare_ids(db)
        for org_id in list(self._orphans_seen):
            if org_id not in orphans:
                del self._orphans_seen[org_id]
        for org_id in orphans:
            first = self._orphans_seen.setdefault(org_id, now)
            if now - first < grace:
                continue
            try:
                await self.ctx.provisioner.remove(org_id=org_id, keep_data=False)
                report.orphans_removed.append(org_id)
                del self._orphans_seen[org_id]
                log.info("removed orphan", org_id=org_id)
            except ProvisionerError as exc:
                report.errors[org_id] = str(exc)


async def _refresh_queue(db: AsyncSession, waiting: list[str]) -> None:
    """Write each waiting org's queue position into its reason (one ``executemany``, only
    rows still pending whose text changed; no timeline event: the position is a live figure,
    the event was written when the org started waiting). ``waiting`` is in queue order,
    behind the orgs that take the free slots. Commits."""
    if not waiting:
        return
    table = Org.__table__  # type: ignore[attr-defined]
    reason: Any = bindparam("b_reason")
    await db.exec(
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.phase == OrgPhase.PENDING,
            table.c.reason != reason,
        )
        .values(reason=reason),
        params=[
            {"b_id": org_id, "b_reason": queued_reason(n + 1)} for n, org_id in enumerate(waiting)
        ],
    )
    await db.commit()
