"""Admission control: at most ``max_concurrent_provisioning`` instance starts at once.

A slot is held from the backend call until the instance is ready, because the start is the
expensive part (an instance's start is CPU-bound): an org in ``provisioning``, an org in
``starting`` whose first heartbeat of this run has not arrived, and a warm-pool spare being
started. The first heartbeat frees the slot at once, before a pass turns the phase to running.
Orgs beyond the limit wait in ``pending`` in creation order and are told their position.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.capacity.spares import claimed_spares, warming_spares
from control_plane.db.models import Instance, Org
from control_plane.db.phases import BUSY, OrgPhase


def queued_reason(position: int) -> str:
    """The reason a queued org shows while it waits in ``pending``."""
    return f"waiting for a provisioning slot (position {position})"


def _busy() -> Any:
    """SQL: slots held now (see the module docstring)."""
    ready = (col(Org.phase) == OrgPhase.STARTING) & (
        col(Instance.last_heartbeat_at) >= col(Instance.started_at)
    )
    orgs = (
        select(func.count())
        .select_from(Org)
        .join(Instance, col(Instance.org_id) == col(Org.id), isouter=True)
        .where(col(Org.phase).in_(BUSY), ~func.coalesce(ready, False))
        .scalar_subquery()
    )
    return orgs + warming_spares()


async def busy_slots(db: AsyncSession) -> int:
    """Slots held now (see the module docstring); one query."""
    return int((await db.exec(select(_busy()))).one())


async def queue_position(db: AsyncSession, org: Org, *, limit: int) -> int | None:
    """Where ``org`` stands in the queue for a slot (1 = next), or None when a slot is free
    for it: the pending orgs created before it go first. An org that claimed a warm-pool spare
    never waits (the spare held a slot while it started; its assignment is one HTTP call).
    One query: this runs for every creation and for every waiting org on every pass."""
    ahead = (
        select(func.count())
        .select_from(Org)
        .where(
            col(Org.phase) == OrgPhase.PENDING,
            col(Org.created_at) < org.created_at,
            col(Org.deleted_at).is_(None),
            col(Org.id) != org.id,
        )
        .scalar_subquery()
    )
    claimed, before, busy = (await db.exec(select(claimed_spares(org.id), ahead, _busy()))).one()
    if claimed:
        return None
    position = int(before) + 1 - max(0, limit - int(busy))
    return position if position > 0 else None
