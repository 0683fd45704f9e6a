"""A restore killed midway leaves the pre-restore data; scheduled backups and retention."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from sqlmodel import col, select

from control_plane.backups.schedule import run_due_backups
from control_plane.backups.service import store_of
from control_plane.db.models import Backup
from org_instance.backup.faults import FAULT_ENV
from provisioners import local
from tests.backups.live import Live, new_org, read_data, wait_serving, write_data
from tests.support.api import assert_problem

StartLive = Callable[..., AbstractAsyncContextManager[Live]]


async def test_a_restore_killed_midway_leaves_the_pre_restore_data(
    start_live: StartLive, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with start_live() as live:
        # The fault hook reaches the instances through the variables they inherit.
        monkeypatch.setattr(local, "_INHERITED", (*local._INHERITED, FAULT_ENV))
        monkeypatch.setenv(FAULT_ENV, "after_move_in")
        org_id = await new_org(live, "alpha")
        await write_data(live, "alpha", title="before", file_body=b"old")
        backup = (await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)).json()
        await write_data(live, "alpha", title="after", file_body=b"new")
        pre_restore = await read_data(live, "alpha")
        pid = (await live.app.state.runtime.provisioner.status(org_id=org_id)).handle["pid"]

        cut = await live.http.post(
            "/api/v1/orgs/alpha/restore",
            headers=live.admin,
            json={"backup_id": backup["id"], "confirm": "alpha"},
        )
        assert_problem(cut, 503, "restore_interrupted")
        # The backend starts the instance again; at boot it rolls the restore back.
        await wait_serving(live, "alpha")
        now = await live.app.state.runtime.provisioner.status(org_id=org_id)
        assert now.handle["pid"] != pid
        assert await read_data(live, "alpha") == pre_restore
        log = live.app.state.runtime.settings.server.data_dir / "orgs" / org_id / "instance.log"
        assert "rolled back a restore that did not finish" in log.read_text()


async def test_scheduled_backups_keep_the_newest(start_live: StartLive) -> None:
    async with start_live(ORGPLANE_BACKUP_INTERVAL="60", ORGPLANE_BACKUP_KEEP="2") as live:
        org_id = await new_org(live, "alpha")
        runtime = live.app.state.runtime
        # Slots of our own, apart from the reconciler's housekeeping, starting at a slot's first
        # second so that ``base + 1`` is still the same slot.
        base = float((int(time.time()) // 60 + 60) * 60)

        async with runtime.sessions() as one, runtime.sessions() as two:
            # Two replicas at the same moment: the slot's unique row lets only one through.
            taken = await asyncio.gather(
                run_due_backups(runtime, one, now=base), run_due_backups(runtime, two, now=base)
            )
        assert sorted(taken) == [0, 1]
        async with runtime.sessions() as db:
            assert await run_due_backups(runtime, db, now=base + 1) == 0  # same slot: not due
            for step in (1, 2, 3):
                assert await run_due_backups(runtime, db, now=base + 60 * step) == 1
            rows = (
                await db.exec(
                    select(Backup)
                    .where(col(Backup.kind) == "scheduled")
                    .order_by(col(Backup.created_at))
                )
            ).all()
        assert len(rows) == 2
        assert [r.schedule_slot for r in rows] == [
            f"{org_id}:{int((base + 60 * step) // 60)}" for step in (2, 3)
        ]
        stored = sorted(p.name for p in (store_of(runtime).root / org_id).iterdir())
        assert stored == sorted(f"{r.id}.tar.gz.enc" for r in rows)
        assert all(r.status == "ready" and r.created_by == "scheduler" for r in rows)


async def test_no_schedule_when_the_interval_is_zero(live: Live) -> None:
    await new_org(live, "alpha")
    async with live.app.state.runtime.sessions() as db:
        assert await run_due_backups(live.app.state.runtime, db) == 0
        assert (await db.exec(select(Backup))).all() == []
