"""The idle decision, the routing predicates and the once-only wake, without a reconciler."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, Instance, InstanceEvent, Org, utcnow
from control_plane.routing.hibernation import (
    WAKE_WINDOW,
    due_condition,
    is_idle,
    wake,
    wake_routed,
)
from tests.routing.helpers import memory_db
from tests.support.api import direct_db

NOW = utcnow()


def test_idle_counts_from_the_last_request_else_from_the_start() -> None:
    def idle(active: float | None, started: float | None, after: float = 60) -> bool:
        return is_idle(
            last_active_at=None if active is None else NOW - timedelta(seconds=active),
            started_at=None if started is None else NOW - timedelta(seconds=started),
            now=NOW,
            hibernate_after=after,
        )

    assert idle(61, 3600)
    assert idle(60, 3600)  # exactly the configured time
    assert not idle(59, 3600)  # a recent request wins over an old start
    assert idle(None, 61)  # no request yet: the run's start is the clock
    assert not idle(None, 30)
    assert not idle(None, None)  # nothing known: never hibernate on a guess
    assert not idle(10**6, 10**6, after=0)  # 0 turns hibernation off
    # Rows come back aware UTC on SQLite too (UTCDateTime, tests/api/test_timestamps.py).


def _org(**fields: Any) -> Org:
    base: dict[str, Any] = {"slug": "acme", "name": "Acme", "phase": "running"}
    return Org(**{**base, **fields})


def test_which_orgs_are_routed_to_the_wake_endpoint() -> None:
    assert wake_routed(_org(phase="hibernated", hibernated_at=NOW), now=NOW)
    # A woken org still starting keeps going to the wake endpoint ...
    assert wake_routed(_org(phase="starting", woken_at=NOW), now=NOW)
    assert wake_routed(_org(phase="pending", woken_at=NOW), now=NOW)
    # ... until it runs, or the wake is long past.
    assert not wake_routed(_org(phase="running", woken_at=NOW), now=NOW)
    late = NOW + WAKE_WINDOW + timedelta(seconds=1)
    assert not wake_routed(_org(phase="starting", woken_at=NOW), now=late)
    # Stopped or suspended orgs are not woken by traffic, hibernated or not.
    stopped = _org(phase="stopped", hibernated_at=NOW, desired_state="stopped")
    assert not wake_routed(stopped, now=NOW)
    assert not wake_routed(_org(phase="stopped", hibernated_at=NOW, suspended=True), now=NOW)
    # A new org that never hibernated keeps the unavailable page while it starts.
    assert not wake_routed(_org(phase="starting"), now=NOW)


async def test_the_candidate_condition_selects_idle_running_orgs_only() -> None:
    async with memory_db() as db:
        cases = {
            "idle": ("running", NOW - timedelta(seconds=120), None),
            "busy": ("running", NOW - timedelta(seconds=5), None),
            "never-active-old": ("running", None, NOW - timedelta(seconds=120)),
            "never-active-new": ("running", None, NOW - timedelta(seconds=5)),
            "already": ("hibernated", NOW - timedelta(seconds=120), None),
            "stopped": ("stopped", NOW - timedelta(seconds=120), None),
        }
        for slug, (phase, active, started) in cases.items():
            org = Org(slug=slug, name=slug, phase=phase)
            db.add(org)
            await db.flush()
            db.add(
                Instance(
                    org_id=org.id, provisioner="local", last_active_at=active, started_at=started
                )
            )
        await db.commit()

        async def due(after: float) -> set[str]:
            query = (
                select(Org.slug)
                .join(Instance, col(Instance.org_id) == col(Org.id))
                .where(due_condition(hibernate_after=after, now=NOW))
            )
            return set((await db.exec(query)).all())

        assert await due(60) == {"idle", "never-active-old"}
        assert await due(0) == set()


async def test_concurrent_wakes_clear_the_mark_once(client: AsyncTestClient[Any]) -> None:
    """Runs on SQLite and PostgreSQL: of eight wakes at once exactly one reports the wake."""
    async with direct_db(client) as db:
        org = Org(slug="sleepy", name="Sleepy", phase="hibernated", hibernated_at=NOW)
        db.add(org)
        await db.commit()
        org_id, generation = org.id, org.generation

    async def one(n: int) -> bool:
        async with direct_db(client) as db:  # a connection of its own each
            return await wake(db, org_id=org_id, by=f"test {n}")

    results = await asyncio.gather(*(one(n) for n in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    async with direct_db(client) as db:
        woken = await db.get(Org, org_id)
        assert woken is not None
        assert woken.hibernated_at is None
        assert woken.woken_at is not None
        assert woken.generation == generation + 1
        events = (await db.exec(select(InstanceEvent).where(InstanceEvent.org_id == org_id))).all()
        assert [e.kind for e in events] == ["instance.waking"]
        audit = (await db.exec(select(AuditEvent).where(AuditEvent.org_id == org_id))).all()
        assert [a.action for a in audit] == ["instance.wake"]
    assert not await one(9)  # nothing left to wake
