"""Helpers of the live rollout tests: a control plane with real local instances (restartable
on the same database), registered versions, and waiting on a rollout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, select

from control_plane.db.fleet_models import RolloutOrg
from tests.backups.live import Live, admin_headers, read_data, wait_serving, write_data
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.wait import WaitTimeout, eventually

V2, V3 = "orgplane-instance:rollout-v2", "orgplane-instance:rollout-v3"

Starter = Callable[..., AbstractAsyncContextManager[Live]]


def starter(make_settings: Any, port: int, tmp_path: Path) -> Starter:
    """Start (and restart) a control plane on one database, data directory and port."""
    env = {
        **FAST_RECONCILER,
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_DEPLOYMENT_ID": f"t-{uuid.uuid4().hex[:8]}",
        "ORGPLANE_BACKUP_DIR": str(tmp_path / "backups"),
        "ORGPLANE_LEASE_SECONDS": "3",
    }
    admin: dict[str, str] = {}

    @asynccontextmanager
    async def start(*, keep_instances: bool = False) -> AsyncIterator[Live]:
        settings = make_settings(**env)
        base = f"http://127.0.0.1:{port}"
        async with (
            serve_control_plane(settings, port, keep_instances=keep_instances) as app,
            httpx.AsyncClient(base_url=base, timeout=60) as http,
        ):
            if not admin:
                admin.update(await admin_headers(app, http))
            yield Live(http=http, app=app, admin=dict(admin))

    return start


async def add_versions(live: Live, images: dict[str, str]) -> None:
    """Register each version name's image."""
    for name, image in images.items():
        made = await live.http.post(
            "/api/v1/versions", headers=live.admin, json={"name": name, "image": image}
        )
        assert made.status_code == 201, made.text


async def register_versions(live: Live) -> str:
    """v1 (the image orgs run now), v2 and v3; returns v1's image."""
    v1 = str(live.app.state.runtime.settings.provisioning.instance_image)
    await add_versions(live, {"v1": v1, "v2": V2, "v3": V3})
    return v1


async def orgs_with_data(
    live: Live, slugs: list[str], *, timeout: float, repeat: int
) -> dict[str, Any]:
    """Create the orgs, wait until each serves, write data into each (a record and a file of
    its slug ``repeat`` times); answers what each org reads back."""
    for slug in slugs:
        created = await live.http.post(
            "/api/v1/orgs", headers=live.admin, json={"name": slug, "slug": slug}
        )
        assert created.status_code == 202, created.text
    expected: dict[str, Any] = {}
    for slug in slugs:
        await wait_serving(live, slug, timeout=timeout)
        await write_data(live, slug, title=f"{slug}-data", file_body=slug.encode() * repeat)
        expected[slug] = await read_data(live, slug)
    return expected


async def create_rollout(live: Live, **body: Any) -> dict[str, Any]:
    made = await live.http.post("/api/v1/rollouts", headers=live.admin, json=body)
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


async def rollout(live: Live, rollout_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await live.http.get(f"/api/v1/rollouts/{rollout_id}", headers=live.admin)
    ).json()
    return body


async def wait_rollout(
    live: Live,
    rollout_id: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 120,
) -> dict[str, Any]:
    """Wait until ``done(rollout)``; the error shows where the rollout was."""
    last: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        nonlocal last
        last = await rollout(live, rollout_id)
        return last if done(last) else None

    try:
        return await eventually(reached, what=what, timeout=timeout, interval=0.3)
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; the rollout: {last}") from None


async def broken_rollout_rolled_back(
    live: Live, *, orgs: int, timeout: float, **body: Any
) -> dict[str, Any]:
    """Create a rollout (``body``) of a version that never passes the gate, in waves ``[1,
    "100%"]``: wait until it paused with its first org failed (rolled back at once) and the
    others queued, roll it back, wait until it is rolled back; answers it then."""
    bad = await create_rollout(live, target={"kind": "all"}, waves=[1, "100%"], **body)
    paused = await wait_rollout(
        live,
        bad["id"],
        lambda r: r["state"] == "paused" and r["counts"].get("failed") == 1,
        "the broken version paused, its first org rolled back",
        timeout=timeout,
    )
    assert paused["counts"] == {"failed": 1, "queued": orgs - 1}
    assert "1 of 1 orgs failed" in paused["reason"]
    back = await live.http.post(f"/api/v1/rollouts/{bad['id']}/rollback", headers=live.admin)
    assert back.status_code == 200, back.text
    gone = await wait_rollout(
        live, bad["id"], lambda r: r["state"] == "rolled_back", "the rollback", timeout=timeout
    )
    assert gone["counts"] == {"failed": 1, "cancelled": orgs - 1}
    return gone


async def org_version(live: Live, slug: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await live.http.get(f"/api/v1/orgs/{slug}/version", headers=live.admin)
    ).json()
    return body


async def rows(live: Live, rollout_id: str) -> list[RolloutOrg]:
    async with live.app.state.runtime.sessions() as db:
        query = select(RolloutOrg).where(col(RolloutOrg.rollout_id) == rollout_id)
        return list((await db.exec(query)).all())


async def close_window(live: Live, slug: str) -> None:
    """A maintenance window that is not now (tomorrow's weekday only)."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).weekday()
    window = {"weekdays": [tomorrow], "start": "00:00", "duration_minutes": 60}
    put = await live.http.put(
        f"/api/v1/orgs/{slug}/maintenance-window", headers=live.admin, json=window
    )
    assert put.status_code == 200, put.text


async def open_window(live: Live, slug: str) -> None:
    gone = await live.http.delete(f"/api/v1/orgs/{slug}/maintenance-window", headers=live.admin)
    assert gone.status_code == 204, gone.text


def max_overlap(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans open at one moment."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most
