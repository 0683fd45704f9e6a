"""The warm pool: ``ORGPLANE_WARM_POOL_SIZE`` pre-started, unassigned instances per backend.

Each reconciler pass calls :meth:`WarmPool.maintain`, which, under a pool lease (one replica at
a time), (1) retires spares that cannot serve: failed, gone from the backend, of another backend,
over the size, or warming for longer than the start timeout; (2) marks warming spares ready
when their ``/healthz`` answers; (3) starts new spares up to the size. Starting spares counts in
admission control like provisioning orgs do, and yields to orgs waiting for a slot. A spare's
row is written *before* its objects, so orphan removal never takes a spare of ours with a row.

Claiming and assigning one spare live in :mod:`control_plane.capacity.spares`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.capacity.admission import busy_slots
from control_plane.capacity.spares import new_pool_secret, spare_spec
from control_plane.db.models import Org, PoolLease, Spare, utcnow
from control_plane.db.phases import OrgPhase
from control_plane.runtime import Runtime
from provisioners.base import InstanceStatus, Provisioner
from provisioners.errors import ProvisionerError
from provisioners.probe import instance_client

log = structlog.get_logger("orgplane.pool")

LIVE_STATES = ("warming", "ready")
REMOVABLE_STATES = (*LIVE_STATES, "failed")
PROBE_TIMEOUT = 0.5


def pool_size(runtime: Runtime, provisioner: Provisioner) -> int:
    """The configured size, or 0 when the backend cannot serve orgs from spares."""
    size = runtime.settings.provisioning.warm_pool_size
    return size if provisioner.supports_warm_pool else 0


async def claim_pool_lease(db: AsyncSession, *, key: str, owner: str, seconds: float) -> bool:
    """Take or renew the pool lease ``key`` (a conditional UPDATE, as ``leases.claim``)."""
    if await db.get(PoolLease, key) is None:
        db.add(PoolLease(key=key))
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()  # another replica made the row first
    now = utcnow()
    result = await db.exec(
        update(PoolLease)
        .where(
            col(PoolLease.key) == key,
            or_(
                col(PoolLease.owner) == "",
                col(PoolLease.owner) == owner,
                col(PoolLease.expires_at) < now,
                col(PoolLease.expires_at).is_(None),
            ),
        )
        .values(owner=owner, expires_at=now + timedelta(seconds=seconds))
    )
    await db.commit()
    return bool(result.rowcount == 1)


async def release_pool_lease(db: AsyncSession, *, key: str, owner: str) -> None:
    """Give the pool lease back (only if ``owner`` holds it)."""
    await db.exec(
        update(PoolLease)
        .where(col(PoolLease.key) == key, col(PoolLease.owner) == owner)
        .values(owner="", expires_at=None)
    )
    await db.commit()


async def spare_ids(db: AsyncSession) -> set[str]:
    """Ids of every spare with a row (the orphan sweep leaves their objects alone)."""
    return set((await db.exec(select(Spare.id))).all())


async def _answers_health(endpoint: str) -> bool:
    if not endpoint:
        return False
    try:
        async with instance_client(endpoint, timeout=PROBE_TIMEOUT) as http:
            return (await http.get(endpoint.rstrip("/") + "/healthz")).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


class WarmPool:
    """Keeps the warm pool of one control-plane replica's backend topped up."""

    def __init__(self, runtime: Runtime, provisioner: Provisioner) -> None:
        self.runtime, self.provisioner = runtime, provisioner
        self.name = provisioner.name or "unknown"
        if runtime.settings.provisioning.warm_pool_size and not provisioner.supports_warm_pool:
            log.warning(
                "warm pool off: the backend cannot serve orgs from spares", provisioner=self.name
            )

    @property
    def size(self) -> int:
        """How many spares to keep."""
        return pool_size(self.runtime, self.provisioner)

    async def maintain(
        self, *, observed: dict[str, InstanceStatus] | None, listed_at: datetime
    ) -> None:
        """One round of upkeep; ``observed`` is the pass's backend list, taken at ``listed_at``."""
        key, owner = f"pool:{self.name}", self.runtime.replica_id
        async with self.runtime.sessions() as db:
            await self._forget_claims_of_deleted_orgs(db)
            spares = list((await db.exec(select(Spare).where(col(Spare.state) != "claimed"))).all())
            if not spares and not self.size:
                return
            seconds = self.runtime.settings.provisioning.lease_seconds
            if not await claim_pool_lease(db, key=key, owner=owner, seconds=seconds):
                return
            try:
                live = await self._retire(db, spares, observed, listed_at)
                warming = [s for s in live if s.state == "warming"]
                await self._promote(db, warming)
                await self._refill(db, missing=self.size - len(live))
            finally:
                await release_pool_lease(db, key=key, owner=owner)

    async def _forget_claims_of_deleted_orgs(self, db: AsyncSession) -> None:
        # The org's own delete path removes the objects (same id); only the row is left over.
        gone = select(Org.id).where(col(Org.deleted_at).is_not(None))
        await db.exec(delete(Spare).where(col(Spare.state) == "claimed", col(Spare.id).in_(gone)))
        await db.commit()

    def _unusable(
        self, spare: Spare, observed: dict[str, InstanceStatus] | None, listed_at: datetime
    ) -> str:
        if spare.state == "failed":
            return "failed"
        created = spare.created_at or utcnow()
        timeout = self.runtime.settings.provisioning.start_timeout
        if spare.state == "warming" and utcnow() - created > timedelta(seconds=timeout):
            return "no answer within the start timeout"
        if observed is None or created >= listed_at:
            return ""  # the list predates the spare: no verdict
        seen = observed.get(spare.id)
        if seen is None or seen.state in ("absent", "stopped", "failed"):
            return f"backend reports {seen.state if seen else 'nothing'}"
        return ""

    async def _retire(
        self,
        db: AsyncSession,
        spares: list[Spare],
        observed: dict[str, InstanceStatus] | None,
        listed_at: datetime,
    ) -> list[Spare]:
        """Remove spares that cannot serve (or exceed the size); the rest, oldest first."""
        live: list[Spare] = []
        for spare in sorted(spares, key=lambda s: s.created_at or utcnow()):
            if spare.provisioner != self.name:
                # Objects of another backend are not ours to reach; forget the row.
                await db.exec(
                    delete(Spare).where(
                        col(Spare.id) == spare.id, col(Spare.state).in_(REMOVABLE_STATES)
                    )
                )
                continue
            why = self._unusable(spare, observed, listed_at)
            if not why and len(live) >= self.size:
                why = "more spares than the pool size"
            if why:
                await self._remove(db, spare, why)
            else:
                live.append(spare)
        await db.commit()
        return live

    async def _remove(self, db: AsyncSession, spare: Spare, why: str) -> None:
        # Marked failed first, conditionally: a spare claimed meanwhile is the org's, not ours.
        marked = await db.exec(
            update(Spare)
            .where(col(Spare.id) == spare.id, col(Spare.state).in_(REMOVABLE_STATES))
            .values(state="failed")
        )
        await db.commit()
        if marked.rowcount != 1:
            return
        try:
            await self.provisioner.remove(org_id=spare.id, keep_data=False)
        except ProvisionerError as exc:
            log.warning("spare not removed; will retry", spare_id=spare.id, error=str(exc))
            return
        await db.exec(delete(Spare).where(col(Spare.id) == spare.id, col(Spare.state) == "failed"))
        log.info("spare removed", spare_id=spare.id, reason=why)

    async def _promote(self, db: AsyncSession, warming: list[Spare]) -> None:
        # Ready when it answers. The backend's "running" is not enough: a container without a
        # health check runs before its server listens. A spare the control plane cannot reach
        # could not take its assignment either.
        answers = await asyncio.gather(*(_answers_health(s.endpoint) for s in warming))
        for spare, ok in zip(warming, answers, strict=True):
            if ok:
                await db.exec(
                    update(Spare)
                    .where(col(Spare.id) == spare.id, col(Spare.state) == "warming")
                    .values(state="ready", ready_at=utcnow())
                )
        await db.commit()

    async def _refill(self, db: AsyncSession, *, missing: int) -> None:
        if missing <= 0:
            return
        limit = self.runtime.settings.provisioning.max_concurrent_provisioning
        waiting = await db.exec(
            select(func.count())
            .select_from(Org)
            .where(col(Org.phase) == OrgPhase.PENDING, col(Org.deleted_at).is_(None))
        )
        if int(waiting.one()):
            return  # orgs waiting for a slot come first
        room = limit - await busy_slots(db)
        await db.commit()  # no pooled connection held while the spares start (each takes one)
        await asyncio.gather(*(self._start_one() for _ in range(max(0, min(missing, room)))))

    async def _start_one(self) -> None:
        secret = new_pool_secret()
        async with self.runtime.sessions() as db:
            spare = Spare(
                provisioner=self.name, pool_secret_enc=self.runtime.box.encrypt(secret.encode())
            )
            db.add(spare)
            await db.commit()  # the row first: the orphan sweep leaves spares with a row alone
            try:
                status = await self.provisioner.apply(
                    spec=spare_spec(self.runtime, spare_id=spare.id, secret=secret)
                )
            except ProvisionerError as exc:
                log.warning("spare did not start", spare_id=spare.id, error=str(exc))
                spare.state = "failed"
            else:
                spare.endpoint, spare.handle = status.endpoint, dict(status.handle)
            db.add(spare)
            await db.commit()
