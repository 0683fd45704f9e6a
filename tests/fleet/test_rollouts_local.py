"""Staged rollouts on the local backend with real instances: waves, the concurrency cap,
pinned orgs and maintenance windows, the health gate with a broken version (pause, automatic
rollback of the failed org), a rollback with data intact, and a control-plane restart in the
middle of a rollout."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from control_plane.db.models import WebhookEvent
from control_plane.fleet import steps
from control_plane.reconciler.faults import BROKEN_VERSION_ENV
from tests.backups.live import Live, new_org, read_data, wait_serving, write_data
from tests.fleet.rollout_live import (
    Starter,
    close_window,
    create_rollout,
    max_overlap,
    open_window,
    org_version,
    register_versions,
    rollout,
    rows,
    starter,
    wait_rollout,
)


@pytest.fixture
def db_backend() -> str:
    """Live rollouts run on SQLite; the API tests cover PostgreSQL."""
    return "sqlite"


@pytest.fixture
def start(make_settings: Any, unused_tcp_port: int, tmp_path: Path) -> Starter:
    return starter(make_settings, unused_tcp_port, tmp_path)


async def _webhook_types(live: Live) -> list[str]:
    async with live.app.state.runtime.sessions() as db:
        return list(
            (await db.exec(select(WebhookEvent.type).order_by(col(WebhookEvent.created_at)))).all()
        )


async def test_waves_cap_pins_and_windows(start: Starter) -> None:
    async with start() as live:
        v1 = await register_versions(live)
        slugs = [f"wave-{n}" for n in range(5)]
        for slug in slugs:
            await new_org(live, slug)
        pin = await live.http.post(
            "/api/v1/orgs/wave-0/instance/actions",
            headers=live.admin,
            json={"action": "redeploy", "image": v1},
        )
        assert pin.status_code == 202, pin.text
        await wait_serving(live, "wave-0")
        await close_window(live, "wave-1")
        made = await create_rollout(
            live,
            to_version="v2",
            from_version="v1",
            target={"kind": "all"},
            waves=[1, "100%"],
            max_concurrent=2,
        )
        assert made["counts"] == {"queued": 4, "skipped": 1}
        waiting = await wait_rollout(
            live,
            made["id"],
            lambda r: any(
                o["slug"] == "wave-1" and "maintenance window" in o["reason"] for o in r["orgs"]
            ),
            "wave-1 waiting for its window",
        )
        assert waiting["state"] == "running"
        assert next(o for o in waiting["orgs"] if o["slug"] == "wave-1")["state"] == "queued"
        await open_window(live, "wave-1")
        done = await wait_rollout(
            live, made["id"], lambda r: r["state"] == "finished", "the rollout finishing"
        )
        assert done["counts"] == {"upgraded": 4, "skipped": 1}
        for slug in slugs[1:]:
            version = await org_version(live, slug)
            assert (version["version"], version["reported_version"], version["image"]) == (
                "v2",
                "v2",
                "orgplane-instance:rollout-v2",
            )
        pinned = await org_version(live, "wave-0")
        assert (pinned["version"], pinned["pinned_image"]) == ("v1", v1)
        fleet = (await live.http.get("/api/v1/fleet/versions", headers=live.admin)).json()["items"]
        assert {r["version"]: r["orgs"] for r in fleet} == {"v2": 4, "v1": 1, "v3": 0}
        moved = [r for r in await rows(live, made["id"]) if r.state == "upgraded"]
        spans = [(r.started_at, r.finished_at) for r in moved]
        assert all(a is not None and b is not None for a, b in spans)
        assert max_overlap(spans) <= 2  # type: ignore[arg-type]
        first = [r for r in moved if r.wave == 0]
        assert len(first) == 1
        assert first[0].finished_at is not None
        assert all(
            r.started_at is not None and r.started_at >= first[0].finished_at
            for r in moved
            if r.wave == 1
        )
        assert all(r.backup_id for r in moved)  # each took its pre-upgrade backup
        events = (await live.http.get("/api/v1/orgs/wave-2/instance", headers=live.admin)).json()[
            "events"
        ]
        kinds = {e["kind"] for e in events}
        assert {"rollout.queued", "rollout.upgrading", "rollout.upgraded"} <= kinds
        assert "rollout.finished" in await _webhook_types(live)
        audit = (
            await live.http.get("/api/v1/audit", headers=live.admin, params={"limit": 200})
        ).json()
        actions = {e["action"] for e in audit["items"]}
        assert {
            "rollout.create",
            "rollout.org_upgrading",
            "rollout.org_upgraded",
            "rollout.finished",
        } <= actions


async def test_broken_version_pauses_and_rollback_keeps_data(
    start: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with start() as live:
        v1 = await register_versions(live)
        monkeypatch.setenv(BROKEN_VERSION_ENV, "v3")
        slugs = [f"data-{n}" for n in range(3)]
        for slug in slugs:
            await new_org(live, slug)
            await write_data(live, slug, title=f"{slug}-before", file_body=slug.encode() * 100)
        expected = {slug: await read_data(live, slug) for slug in slugs}

        # A good version, stopped after its first wave and rolled back.
        made = await create_rollout(
            live, to_version="v2", target={"kind": "all"}, waves=[1, "100%"]
        )
        later = [o["slug"] for o in (await rollout(live, made["id"]))["orgs"] if o["wave"] == 1]
        for slug in later:
            await close_window(live, slug)
        up = await wait_rollout(
            live, made["id"], lambda r: r["counts"].get("upgraded") == 1, "the first wave upgraded"
        )
        first = next(o["slug"] for o in up["orgs"] if o["state"] == "upgraded")
        assert (await org_version(live, first))["reported_version"] == "v2"
        await wait_serving(live, first)
        assert await read_data(live, first) == expected[first]  # the new version reads the data
        back = await live.http.post(f"/api/v1/rollouts/{made['id']}/rollback", headers=live.admin)
        assert back.status_code == 200, back.text
        done = await wait_rollout(
            live, made["id"], lambda r: r["state"] == "rolled_back", "the rollback"
        )
        assert done["counts"] == {"rolled_back": 1, "cancelled": 2}
        back_on = await org_version(live, first)
        assert back_on["reported_version"] == "v1"
        # Back to exactly its previous assignment: none, so it follows the default image again.
        assert back_on["assigned_image"] is None
        for slug in later:
            await open_window(live, slug)

        # A broken version: its first org never gets ready and is rolled back at once;
        # the rollout pauses.
        bad = await create_rollout(
            live,
            to_version="v3",
            target={"kind": "all"},
            waves=[1, "100%"],
            health_deadline_seconds=8,
        )
        paused = await wait_rollout(
            live, bad["id"], lambda r: r["state"] == "paused", "the rollout pausing", timeout=90
        )
        assert "1 of 1 orgs failed" in paused["reason"], paused
        failed = await wait_rollout(
            live, bad["id"], lambda r: r["counts"].get("failed") == 1, "the failed org rolled back"
        )
        assert failed["counts"] == {"failed": 1, "queued": 2}
        victim = next(o for o in failed["orgs"] if o["state"] == "failed")
        assert "not running v3 within 8s" in victim["reason"]
        assert (await org_version(live, victim["slug"]))["reported_version"] == "v1"
        assert "rollout.paused" in await _webhook_types(live)
        back = await live.http.post(f"/api/v1/rollouts/{bad['id']}/rollback", headers=live.admin)
        assert back.status_code == 200, back.text
        await wait_rollout(live, bad["id"], lambda r: r["state"] == "rolled_back", "the rollback")
        for slug in slugs:
            await wait_serving(live, slug)
            assert await read_data(live, slug) == expected[slug], slug
            version = await org_version(live, slug)
            assert (version["image"], version["assigned_image"]) == (v1, None)


async def test_a_restart_mid_rollout_resumes(
    start: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    slugs = [f"boot-{n}" for n in range(3)]
    # The first control plane upgrades one org, then its second org's pre-upgrade backup is
    # held until it stops: without that, a loaded machine let it finish all three before its
    # shutdown, and there was nothing left to resume (seen under a CPU hog).
    entered, release = asyncio.Event(), asyncio.Event()
    real_backup, backups = steps.take_backup, 0

    async def second_backup_held(*args: Any, **kwargs: Any) -> Any:
        nonlocal backups
        backups += 1
        if backups > 1 and not release.is_set():
            entered.set()
            await asyncio.wait_for(release.wait(), timeout=120)
        return await real_backup(*args, **kwargs)

    monkeypatch.setattr(steps, "take_backup", second_backup_held)
    async with start(keep_instances=True) as live:
        await register_versions(live)
        for slug in slugs:
            await new_org(live, slug)
        made = await create_rollout(
            live, to_version="v2", target={"kind": "all"}, waves=[1, "100%"], max_concurrent=1
        )
        await wait_rollout(
            live, made["id"], lambda r: r["counts"].get("upgraded", 0) >= 1, "one org upgraded"
        )
        await asyncio.wait_for(entered.wait(), timeout=60)
        assert (await rollout(live, made["id"]))["counts"].get("upgraded") == 1
    release.set()
    # A new control plane (new replica id) on the same database and data directory.
    async with start() as live:
        assert (await rollout(live, made["id"]))["state"] == "running"
        done = await wait_rollout(
            live, made["id"], lambda r: r["state"] == "finished", "the rollout finishing"
        )
        assert done["counts"] == {"upgraded": 3}
        for slug in slugs:
            assert (await org_version(live, slug))["reported_version"] == "v2"
