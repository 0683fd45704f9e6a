"""A rollback to a version with an older schema, on real local instances: with
``on_older_schema: restore`` the pre-upgrade snapshot comes back (what was written on the new
version is gone, as the option says); with ``refuse`` the org stays on the new version with its
data, and its row says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.backups.live import Live, new_org, read_data, wait_serving, write_data
from tests.fleet.rollout_live import (
    Starter,
    close_window,
    create_rollout,
    open_window,
    org_version,
    rollout,
    starter,
    wait_rollout,
)


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
def start(make_settings: Any, unused_tcp_port: int, tmp_path: Path) -> Starter:
    return starter(make_settings, unused_tcp_port, tmp_path)


async def _upgrade_one_then_roll_back(live: Live, option: str) -> tuple[str, dict[str, Any]]:
    """A rollout v1 -> v2 over both orgs whose second wave is held by a closed window; once
    the first org runs v2 (and got new data there), roll back. The first org and the end."""
    made = await create_rollout(
        live, to_version="v2", target={"kind": "all"}, waves=[1, "100%"], on_older_schema=option
    )
    held = [o["slug"] for o in (await rollout(live, made["id"]))["orgs"] if o["wave"] == 1]
    for slug in held:
        await close_window(live, slug)
    up = await wait_rollout(
        live, made["id"], lambda r: r["counts"].get("upgraded") == 1, "one upgraded"
    )
    first = next(o["slug"] for o in up["orgs"] if o["state"] == "upgraded")
    await wait_serving(live, first)
    await write_data(live, first, title=f"written-on-v2-{option}", file_body=b"new")
    back = await live.http.post(f"/api/v1/rollouts/{made['id']}/rollback", headers=live.admin)
    assert back.status_code == 200, back.text
    done = await wait_rollout(
        live, made["id"], lambda r: r["state"] == "rolled_back", "the rollback"
    )
    for slug in held:
        await open_window(live, slug)
    return first, done


async def test_older_schema_restores_or_refuses(start: Starter) -> None:
    async with start() as live:
        v1 = live.app.state.runtime.settings.provisioning.instance_image
        for name, image, schema in (("v1", v1, 1), ("v2", "orgplane-instance:schema-2", 2)):
            body = {"name": name, "image": image, "schema_version": schema}
            made = await live.http.post("/api/v1/versions", headers=live.admin, json=body)
            assert made.status_code == 201, made.text
        for slug in ("schema-a", "schema-b"):
            await new_org(live, slug)
            await write_data(live, slug, title=f"{slug}-before", file_body=b"old")
        before = {slug: await read_data(live, slug) for slug in ("schema-a", "schema-b")}

        first, done = await _upgrade_one_then_roll_back(live, "restore")
        assert done["counts"] == {"rolled_back": 1, "cancelled": 1}
        await wait_serving(live, first)
        assert await read_data(live, first) == before[first]  # the snapshot, v2's writes gone
        assert (await org_version(live, first))["reported_version"] == "v1"
        events = (await live.http.get(f"/api/v1/orgs/{first}/instance", headers=live.admin)).json()
        assert "rollout.restored" in {e["kind"] for e in events["events"]}

        first, done = await _upgrade_one_then_roll_back(live, "refuse")
        assert done["counts"] == {"refused": 1, "cancelled": 1}
        assert "1 refused" in done["reason"]
        refused = next(
            o for o in (await rollout(live, done["id"]))["orgs"] if o["state"] == "refused"
        )
        assert "older schema" in refused["reason"]
        assert (await org_version(live, first))["reported_version"] == "v2"
        titles, _ = await read_data(live, first)
        assert "written-on-v2-refuse" in titles  # nothing was lost
