"""The reconciler removes backend objects labelled as ours whose org is gone, after a grace
period, and never touches anything else: an org that exists, or another deployment's objects.

Runs against every backend (the ``harness`` fixture) with a real control-plane runtime on
SQLite driving :class:`~control_plane.reconciler.loop.Reconciler` passes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.db.models import Instance, Org, utcnow
from control_plane.reconciler.loop import Reconciler
from control_plane.reconciler.reconcile import Context
from tests.provisioners.harness import Harness, wait_for_state

GRACE = 2.0
LIVE = {"running", "starting", "creating"}


@pytest.fixture
def db_backend() -> str:
    """The orphan path is the reconciler's; SQLite is enough for the registry side."""
    return "sqlite"


@pytest.fixture
async def runtime(make_settings: Any) -> Any:
    settings = make_settings(ORGPLANE_ORPHAN_GRACE_SECONDS=str(GRACE))
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        yield client.app.state.runtime


async def _registered(runtime: Any, org_id: str, *, slug: str, deleted: bool = False) -> None:
    """An org row the reconciler sees as settled (running, heartbeat fresh), or deleted."""
    async with runtime.sessions() as db:
        org = Org(id=org_id, slug=slug, name=slug, phase="running")
        if deleted:
            org.phase, org.desired_state, org.deleted_at = "deleted", "deleted", utcnow()
        db.add(org)
        await db.commit()
        db.add(
            Instance(
                org_id=org_id,
                provisioner="test",
                phase=org.phase,
                observed_generation=org.generation,
                last_heartbeat_at=utcnow(),
            )
        )
        await db.commit()


async def test_labelled_objects_without_an_org_go_after_the_grace_period(
    harness: Harness, runtime: Any
) -> None:
    ours = harness.provisioner()
    other = harness.provisioner(deployment_id=f"{harness.options.deployment_id}-other")
    orphan, gone, kept = harness.spec(slug="orphan"), harness.spec(slug="gone"), harness.spec()
    foreign = harness.spec(slug="foreign")
    for spec in (orphan, gone, kept):
        await ours.apply(spec=spec)
    await other.apply(spec=foreign)
    for spec in (orphan, gone, kept):
        await harness.mark_ready(await wait_for_state(ours, spec.org_id, LIVE))
    await _registered(runtime, kept.org_id, slug="kept")
    await _registered(runtime, gone.org_id, slug="gone", deleted=True)
    reconciler = Reconciler(Context(runtime, ours))

    first = await reconciler.run_pass()
    assert first.orphans_removed == []  # seen, but inside the grace period
    assert await harness.count_instances(orphan.org_id) == 1

    await asyncio.sleep(GRACE + 0.3)  # the grace period elapses, from the end of the first pass
    second = await reconciler.run_pass()

    assert sorted(second.orphans_removed) == sorted([orphan.org_id, gone.org_id])
    assert second.errors == {}
    for spec in (orphan, gone):
        assert await ours.status(org_id=spec.org_id) is None  # data and all
        assert await harness.count_instances(spec.org_id) == 0
    assert await harness.count_instances(kept.org_id) == 1
    assert (await ours.status(org_id=kept.org_id)) is not None
    assert await harness.count_instances(foreign.org_id) == 1  # not labelled as ours
    assert (await other.status(org_id=foreign.org_id)) is not None
    assert kept.org_id not in second.reconciled

    await ours.remove(org_id=kept.org_id, keep_data=False)
    await other.remove(org_id=foreign.org_id, keep_data=False)


async def test_an_orphan_that_reappears_as_an_org_is_kept(harness: Harness, runtime: Any) -> None:
    """The grace period is what lets a row committed a moment after its object survive."""
    ours = harness.provisioner()
    late = harness.spec(slug="late")
    await ours.apply(spec=late)
    await harness.mark_ready(await wait_for_state(ours, late.org_id, LIVE))
    reconciler = Reconciler(Context(runtime, ours))

    assert (await reconciler.run_pass()).orphans_removed == []
    await _registered(runtime, late.org_id, slug="late")
    await asyncio.sleep(GRACE + 0.2)  # the grace period must elapse: time is the point
    report = await reconciler.run_pass()

    assert report.orphans_removed == []
    assert await harness.count_instances(late.org_id) == 1
    await ours.remove(org_id=late.org_id, keep_data=False)
