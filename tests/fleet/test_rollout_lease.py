"""One replica drives a rollout at a time: a step is taken only under the rollout's lease, a
lease another replica holds is left alone until it expires (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.fleet_models import Rollout, RolloutOrg
from control_plane.db.models import Instance, utcnow
from control_plane.fleet.engine import drive_rollouts
from control_plane.fleet.lease import claim_rollout
from control_plane.fleet.steps import _claim_start
from tests.support.api import direct_db, runtime_of
from tests.support.orgs import make_org

V1, V2 = "orgplane-instance:1", "orgplane-instance:2"


async def _reasons(client: AsyncTestClient[Any], rollout_id: str) -> set[str]:
    async with direct_db(client) as db:
        query = select(RolloutOrg.reason).where(col(RolloutOrg.rollout_id) == rollout_id)
        return set((await db.exec(query)).all())


async def test_a_rollout_is_stepped_only_under_its_lease(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    for name, image in (("1", V1), ("2", V2)):
        made = await client.post(
            "/api/v1/versions", headers=admin, json={"name": name, "image": image}
        )
        assert made.status_code == 201, made.text
        assert made.json()["created_at"].endswith("Z")
    for slug in ("lease-a", "lease-b"):
        org = await make_org(client, admin, slug)
        async with direct_db(client) as db:
            db.add(Instance(org_id=org["id"], provisioner="local", image=V1))
            await db.commit()
    body = {"to_version": "2", "target": {"kind": "all"}, "waves": ["100%"]}
    made = await client.post("/api/v1/rollouts", headers=admin, json=body)
    assert made.status_code == 201, made.text
    rollout_id = made.json()["id"]
    app_runtime = runtime_of(client)
    engine = create_async_engine(app_runtime.engine.url.render_as_string(hide_password=False))
    # The app's runtime, with sessions of this test's event loop.
    runtime: Any = SimpleNamespace(
        settings=app_runtime.settings,
        replica_id=app_runtime.replica_id,
        sessions=lambda: AsyncSession(engine, expire_on_commit=False),
    )
    async with direct_db(client) as db:
        assert await claim_rollout(db, rollout_id=rollout_id, owner="other-replica", seconds=60)
        assert not await claim_rollout(db, rollout_id=rollout_id, owner="third", seconds=60)
    assert await drive_rollouts(runtime) is False
    assert await _reasons(client, rollout_id) == {""}  # nothing was done
    async with direct_db(client) as db:
        row = await db.get(Rollout, rollout_id)
        assert row is not None
        assert row.lease_owner == "other-replica"
        row.lease_expires_at = utcnow() - timedelta(seconds=1)  # the other replica died
        db.add(row)
        await db.commit()
    await drive_rollouts(runtime)
    # The orgs never started (no backend in this app): they wait, visibly, for their turn.
    assert await _reasons(client, rollout_id) == {"waiting for the org to run (it is pending)"}
    async with direct_db(client) as db:
        row = await db.get(Rollout, rollout_id)
        assert row is not None
        assert (row.lease_owner, row.state) == ("", "running")
        # Two replicas starting one org: the first start wins until it is stale.
        first = (
            await db.exec(select(RolloutOrg.id).where(col(RolloutOrg.rollout_id) == rollout_id))
        ).first()
        assert first is not None
        assert await _claim_start(db, first, seconds=60)
        assert not await _claim_start(db, first, seconds=60)
        assert await _claim_start(db, first, seconds=0)  # a start that died is taken over
    await engine.dispose()
