"""The rollout lease: one replica steps a rollout at a time.

A replica takes the lease with a conditional ``UPDATE`` of the ``Rollout`` row (free, its own,
or expired), as instance leases are taken, and holds it for ``ORGPLANE_LEASE_SECONDS``. A step
can take longer than that (a pre-upgrade backup of a large org, a snapshot restore), so while
a step runs :func:`renewed_lease` renews the lease every third of its time, in a session of its
own; a replica that dies stops renewing, and its lease expires as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog
from sqlalchemy import or_, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.fleet_models import Rollout
from control_plane.db.models import utcnow
from control_plane.runtime import Runtime

log = structlog.get_logger("orgplane.rollouts")


async def claim_rollout(db: AsyncSession, *, rollout_id: str, owner: str, seconds: float) -> bool:
    """Take or renew the rollout's lease for ``owner``; True when held. Commits."""
    now = utcnow()
    result = await db.exec(
        update(Rollout)
        .where(
            col(Rollout.id) == rollout_id,
            or_(
                col(Rollout.lease_owner).in_(("", owner)),
                col(Rollout.lease_expires_at) < now,
                col(Rollout.lease_expires_at).is_(None),
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds))
    )
    await db.commit()
    return bool(result.rowcount == 1)


async def release_rollout(db: AsyncSession, *, rollout_id: str, owner: str) -> None:
    """Give the lease up if ``owner`` still holds it. Commits."""
    await db.exec(
        update(Rollout)
        .where(col(Rollout.id) == rollout_id, col(Rollout.lease_owner) == owner)
        .values(lease_owner="", lease_expires_at=None)
    )
    await db.commit()


async def _renew(runtime: Runtime, *, rollout_id: str, owner: str, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds / 3)
        try:
            async with runtime.sessions() as db:
                held = await claim_rollout(db, rollout_id=rollout_id, owner=owner, seconds=seconds)
        except Exception as exc:  # a busy database: the next renewal may pass, in time
            log.warning("rollout lease renewal failed", rollout_id=rollout_id, error=str(exc))
            continue
        if not held:
            log.warning("rollout lease lost during a step", rollout_id=rollout_id, owner=owner)
            return


@contextlib.asynccontextmanager
async def renewed_lease(
    runtime: Runtime, *, rollout_id: str, owner: str, seconds: float
) -> AsyncIterator[None]:
    """Keep ``owner``'s lease on the rollout (already taken) alive while the body runs."""
    renewer = asyncio.create_task(
        _renew(runtime, rollout_id=rollout_id, owner=owner, seconds=seconds),
        name=f"rollout-lease-{rollout_id}",
    )
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
