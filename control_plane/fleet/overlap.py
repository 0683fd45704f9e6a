"""Several rollouts at once, over disjoint sets of orgs.

An org *belongs* to an active rollout (running, paused, rolling back) while that rollout may
still move it: its row there is ``queued``, ``upgrading``, ``upgraded`` (a rollback takes it
back), ``failing`` or ``reverting``. A new rollout whose orgs include one that belongs to an
active rollout is refused as a whole (409 ``rollout_active``, naming the orgs and rollouts), so
no org is ever moved by two rollouts; one over other orgs (another plan, another subtree)
starts beside it. Orgs that an active rollout skipped, or is done with (``failed``,
``rolled_back``, ``refused``, ``cancelled``), are free.

Creations are serialised, so two overlapping ones sent at once cannot both pass the check: a
transaction-scoped advisory lock on PostgreSQL, the database's write lock on SQLite (taken by
a write that changes nothing, before the check reads).
"""

from __future__ import annotations

from sqlalchemy import false, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.fleet_models import Rollout, RolloutOrg
from control_plane.db.models import Org
from control_plane.fleet.engine import ACTIVE
from orgplane_wire.problems import Conflict

#: Row states of an org that its active rollout may still move.
HOLDING = ("queued", "upgrading", "upgraded", "failing", "reverting")
#: The advisory lock key of rollout creation ("rollouts" in ASCII).
_LOCK_KEY = 0x726F6C6C6F757473


async def serialise_creation(db: AsyncSession) -> None:
    """Hold the rollout-creation lock until this transaction ends."""
    if db.get_bind().dialect.name == "postgresql":
        await db.exec(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
    else:
        await db.exec(update(Rollout).where(false()).values(reason=Rollout.reason))


async def refuse_overlap(db: AsyncSession, org_ids: list[str]) -> None:
    """409 ``rollout_active`` when an active rollout holds any of ``org_ids``."""
    query = (
        select(RolloutOrg.org_id, RolloutOrg.rollout_id)
        .join(Rollout, col(Rollout.id) == col(RolloutOrg.rollout_id))
        .where(col(Rollout.state).in_(ACTIVE), col(RolloutOrg.state).in_(HOLDING))
    )
    wanted = set(org_ids)
    held = [(org, rollout) for org, rollout in (await db.exec(query)).all() if org in wanted]
    if not held:
        return
    rollouts = sorted({rollout for _, rollout in held})
    names = select(Org.slug).where(col(Org.id).in_(sorted({org for org, _ in held})[:20]))
    slugs = sorted((await db.exec(names)).all())
    raise Conflict(
        f"{len(held)} of these orgs are in an active rollout ({', '.join(rollouts[:5])}): "
        "finish or roll it back first, or leave them out (a rollout may run beside another "
        "over other orgs).",
        code="rollout_active",
        orgs=slugs,
        rollouts=rollouts,
    )
