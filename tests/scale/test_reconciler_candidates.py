"""A reconciler pass at many settled orgs picks only the orgs that need work, in a fixed number
of queries (SQLite and PostgreSQL); counts, never timings."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from control_plane.db.engine import make_sessionmaker
from control_plane.db.models import Instance, Org, utcnow
from control_plane.reconciler.loop import Reconciler
from provisioners.base import InstanceStatus
from tests.support.api import runtime_of

SETTLED = 2000


async def test_a_pass_over_many_settled_orgs_picks_only_those_that_changed(
    client: AsyncTestClient[Any],
) -> None:
    runtime = runtime_of(client)
    engine = create_async_engine(
        runtime.engine.url.render_as_string(hide_password=False), poolclass=NullPool
    )
    sessions = make_sessionmaker(engine)
    try:
        now = utcnow()
        async with sessions() as db:
            orgs = [
                Org(slug=f"settled-{i:05d}", name=f"Settled {i}", phase="running")
                for i in range(SETTLED)
            ]
            db.add_all(orgs)
            await db.flush()
            db.add_all(
                Instance(
                    org_id=o.id,
                    provisioner="local",
                    phase="running",
                    observed_generation=o.generation,
                    last_heartbeat_at=now,
                )
                for o in orgs
            )
            await db.commit()
            bumped, silent, vanished = orgs[7], orgs[700], orgs[1400]
            bumped.generation += 1
            db.add(bumped)
            silent_row = await db.get(Instance, silent.id)
            assert silent_row is not None
            silent_row.last_heartbeat_at = now - timedelta(hours=1)
            db.add(silent_row)
            await db.commit()
        observed = {o.id: InstanceStatus(org_id=o.id, state="running") for o in orgs}
        del observed[vanished.id]
        ctx: Any = SimpleNamespace(
            runtime=SimpleNamespace(settings=runtime.settings, sessions=sessions),
            provisioner=SimpleNamespace(name="local", supports_warm_pool=False),
        )
        seen: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        candidates, known = await Reconciler(ctx)._candidates(observed)
    finally:
        await engine.dispose()
    assert sorted(candidates) == sorted([bumped.id, silent.id, vanished.id])
    assert len(known) == SETTLED
    assert len(seen) == 2  # the live orgs' phases, and the orgs needing work, at any scale
