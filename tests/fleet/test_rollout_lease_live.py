"""The rollout lease outlives a long step: while a pre-upgrade backup takes longer than
``ORGPLANE_LEASE_SECONDS`` (3 s here), the replica driving the rollout keeps renewing its lease,
so another replica cannot take the rollout over; the rollout then finishes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import control_plane.fleet.steps as steps
from control_plane.db.fleet_models import Rollout
from control_plane.db.models import utcnow
from control_plane.fleet.lease import claim_rollout
from tests.backups.live import new_org
from tests.fleet.rollout_live import (
    Starter,
    create_rollout,
    org_version,
    register_versions,
    starter,
    wait_rollout,
)
from tests.support.faults import held
from tests.support.wait import eventually


@pytest.fixture
def db_backend() -> str:
    """Live rollouts run on SQLite; the lease's SQL is also tested on PostgreSQL."""
    return "sqlite"


@pytest.fixture
def start(make_settings: Any, unused_tcp_port: int, tmp_path: Path) -> Starter:
    return starter(make_settings, unused_tcp_port, tmp_path)


async def test_the_lease_is_renewed_while_a_backup_runs_long(
    start: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    monkeypatch.setattr(
        steps, "take_backup", held(steps.take_backup, entered=entered, release=release)
    )
    async with start() as live:
        runtime = live.app.state.runtime
        await register_versions(live)
        await new_org(live, "slow-backup")
        made = await create_rollout(live, to_version="v2", target={"kind": "all"}, waves=["100%"])
        await asyncio.wait_for(entered.wait(), timeout=60)
        async with runtime.sessions() as db:
            first = await db.get(Rollout, made["id"])
            assert first is not None
            assert first.lease_owner == runtime.replica_id
            taken_until = first.lease_expires_at
        assert taken_until is not None

        async def renewed_past_its_first_term() -> Rollout | None:
            async with runtime.sessions() as db:
                row = await db.get(Rollout, made["id"])
                now = utcnow()
                if row is None or now <= taken_until or row.lease_expires_at is None:
                    return None
                return row

        row = await eventually(
            renewed_past_its_first_term, what="the first lease term to pass", timeout=30
        )
        assert row.lease_owner == runtime.replica_id
        assert row.lease_expires_at is not None
        assert row.lease_expires_at > taken_until  # renewed while the backup ran
        async with runtime.sessions() as db:
            assert not await claim_rollout(
                db, rollout_id=made["id"], owner="other-replica", seconds=3
            ), "another replica took the rollout while its step was still running"
        release.set()
        done = await wait_rollout(
            live, made["id"], lambda r: r["state"] == "finished", "the rollout finishing"
        )
        assert done["counts"] == {"upgraded": 1}
        assert (await org_version(live, "slow-backup"))["reported_version"] == "v2"
