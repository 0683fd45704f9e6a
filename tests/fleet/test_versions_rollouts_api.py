"""The version registry and the rollouts API: who may use them, what they answer, and bad
input refused with a stable problem code that changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func
from sqlmodel import select

from control_plane.db.fleet_models import InstanceVersion, MaintenanceWindow, Rollout, RolloutOrg
from control_plane.db.models import AuditEvent, Instance
from control_plane.fleet.plan import wave_sizes
from control_plane.fleet.windows import in_window
from control_plane.metrics import fleet_families
from orgplane_wire.problems import BadRequest
from tests.support.api import assert_problem, direct_db
from tests.support.orgs import make_org, user
from tests.ui.forms import ui_login

V1 = "orgplane-instance:1.0"
V2 = "orgplane-instance:2.0"


async def _deployed(
    client: AsyncTestClient[Any], org_id: str, image: str, pinned: str = ""
) -> None:
    """Give the org an instance row as the reconciler leaves one after deploying ``image``."""
    async with direct_db(client) as db:
        db.add(Instance(org_id=org_id, provisioner="local", image=image, pinned_image=pinned))
        await db.commit()


async def _counts(client: AsyncTestClient[Any]) -> tuple[int, ...]:
    counts: list[int] = []
    async with direct_db(client) as db:
        for table in (InstanceVersion, Rollout, RolloutOrg):
            counts.append(int((await db.exec(select(func.count()).select_from(table))).one()))
    return tuple(counts)


async def _register(
    client: AsyncTestClient[Any], admin: dict[str, str], name: str, image: str, **more: Any
) -> dict[str, Any]:
    made = await client.post(
        "/api/v1/versions", headers=admin, json={"name": name, "image": image, **more}
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def test_versions_registry_and_fleet_view(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    v1 = await _register(client, admin, "1.0", V1, notes="first")
    assert (v1["repository"], v1["tag"], v1["digest"], v1["orgs"]) == (
        "orgplane-instance",
        "1.0",
        "",
        0,
    )
    await _register(client, admin, "2.0", V2, schema_version=2)
    for slug, image in (("vaa", V1), ("vbb", V1), ("vcc", "orgplane-instance:old")):
        org = await make_org(client, admin, slug)
        await _deployed(client, org["id"], image)
    listed = (await client.get("/api/v1/versions", headers=admin)).json()["items"]
    assert {v["name"]: v["orgs"] for v in listed} == {"1.0": 2, "2.0": 0}
    fleet = (await client.get("/api/v1/fleet/versions", headers=admin)).json()["items"]
    assert {(r["image"], r["version"]): r["orgs"] for r in fleet} == {
        (V1, "1.0"): 2,
        ("orgplane-instance:old", None): 1,
        (V2, "2.0"): 0,
    }
    mine = (await client.get("/api/v1/orgs/vaa/version", headers=admin)).json()
    assert (mine["image"], mine["version"], mine["pinned_image"]) == (V1, "1.0", None)
    assert (await client.get("/api/v1/versions/1.0", headers=admin)).json()["id"] == v1["id"]
    assert_problem(
        await client.delete("/api/v1/versions/1.0", headers=admin), 409, "version_in_use"
    )
    assert (await client.delete("/api/v1/versions/2.0", headers=admin)).status_code == 204
    assert_problem(
        await client.get("/api/v1/versions/2.0", headers=admin), 404, "version_not_found"
    )
    async with direct_db(client) as db:
        actions = (
            await db.exec(select(AuditEvent.action).where(AuditEvent.target_type == "version"))
        ).all()
    assert sorted(actions) == ["version.create", "version.create", "version.delete"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "bad name", "image": V1}, 400, "invalid_version_name"),
        ({"name": "x", "image": "Not An Image"}, 400, "invalid_image"),
        ({"name": "x", "image": "evil.example/miner:1"}, 403, "image_not_allowed"),
        ({"name": "x", "image": V1, "extra": 1}, 400, None),
    ],
)
async def test_bad_versions_are_refused_and_change_nothing(
    client: AsyncTestClient[Any],
    admin: dict[str, str],
    body: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    before = await _counts(client)
    assert_problem(await client.post("/api/v1/versions", headers=admin, json=body), status, code)
    assert await _counts(client) == before


async def test_only_platform_admins_manage_versions_and_rollouts(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    owner = await user(client, "owner@example.com")
    await make_org(client, owner, "mine")
    refused = await client.post("/api/v1/versions", headers=owner, json={"name": "1", "image": V1})
    assert_problem(refused, 403, "platform_admin_required")
    body = {"to_version": "1", "target": {"kind": "all"}}
    assert_problem(
        await client.post("/api/v1/rollouts", headers=owner, json=body),
        403,
        "platform_admin_required",
    )
    assert_problem(
        await client.get("/api/v1/fleet/versions", headers=owner), 403, "platform_admin_required"
    )
    # An org's own members may read which version it runs.
    assert (await client.get("/api/v1/orgs/mine/version", headers=owner)).status_code == 200


async def test_bad_rollouts_are_refused_with_stable_codes_and_change_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await _register(client, admin, "1.0", V1)
    await _register(client, admin, "2.0", V2)
    pinned = await make_org(client, admin, "pinned")
    await _deployed(client, pinned["id"], V1, pinned=V1)
    await make_org(client, admin, "fresh")  # never deployed
    good = {"to_version": "2.0", "target": {"kind": "all"}}
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({**good, "to_version": "9.9"}, 400, "unknown_version"),
        ({**good, "from_version": "nope"}, 400, "unknown_version"),
        ({**good, "from_version": "2.0"}, 400, "same_version"),
        ({**good, "target": {"kind": "plan"}}, 400, "invalid_target"),
        ({**good, "target": {"kind": "plan", "plan": "gold"}}, 400, "unknown_plan"),
        ({**good, "target": {"kind": "orgs", "orgs": ["ghost"]}}, 400, "unknown_org"),
        ({**good, "target": {"kind": "subtree", "parent": "ghost"}}, 400, "unknown_org"),
        ({**good, "target": {"kind": "galaxy"}}, 400, None),
        ({**good, "target": {"kind": "percent", "percent": 0}}, 400, None),
        (good, 400, "empty_target"),  # pinned and never-deployed orgs only
        ({**good, "waves": []}, 400, "invalid_wave_spec"),
        ({**good, "waves": ["50%", "10%"]}, 400, "invalid_wave_spec"),
        ({**good, "waves": [0]}, 400, "invalid_wave_spec"),
        ({**good, "waves": ["150%"]}, 400, "invalid_wave_spec"),
        ({**good, "waves": [True]}, 400, "validation_error"),
        ({**good, "max_concurrent": 0}, 400, None),
        ({**good, "on_older_schema": "pray"}, 400, None),
    ]
    before = await _counts(client)
    for body, status, code in cases:
        answer = await client.post("/api/v1/rollouts", headers=admin, json=body)
        assert_problem(answer, status, code)
    assert await _counts(client) == before
    empty = await client.post("/api/v1/rollouts", headers=admin, json=good)
    assert assert_problem(empty, 400, "empty_target")["skipped"] == {
        "pinned": f"pinned to {V1}",
        "fresh": "not deployed yet",
    }


async def test_a_rollout_is_planned_in_waves_with_skips_visible(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await _register(client, admin, "1.0", V1)
    await _register(client, admin, "2.0", V2)
    for n in range(10):
        org = await make_org(client, admin, f"org{n}")
        await _deployed(client, org["id"], V1, pinned=V1 if n == 0 else "")
    body = {
        "to_version": "2.0",
        "from_version": "1.0",
        "target": {"kind": "all"},
        "waves": [1, "50%", "100%"],
    }
    made = await client.post("/api/v1/rollouts", headers=admin, json=body)
    assert made.status_code == 201, made.text
    rollout = made.json()
    assert (rollout["state"], rollout["wave_count"], rollout["counts"]) == (
        "running",
        3,
        {"queued": 9, "skipped": 1},
    )
    detail = (await client.get(f"/api/v1/rollouts/{rollout['id']}", headers=admin)).json()
    waves = [o["wave"] for o in detail["orgs"] if o["state"] == "queued"]
    assert sorted(waves) == [0] + [1] * 4 + [2] * 4  # 1, then up to ceil(4.5) = 5, then all 9
    skipped = [o for o in detail["orgs"] if o["state"] == "skipped"]
    assert [(o["slug"], o["reason"]) for o in skipped] == [("org0", f"pinned to {V1}")]
    async with direct_db(client) as db:
        families = await fleet_families(db, heartbeat_interval=10)
    (progress,) = [f for f in families if f.name == "orgplane_rollout_orgs"]
    assert {(s.labels["rollout_state"], s.labels["state"]): s.value for s in progress.samples} == {
        ("running", "queued"): 9,
        ("running", "skipped"): 1,
    }
    again = await client.post("/api/v1/rollouts", headers=admin, json=body)
    assert_problem(again, 409, "rollout_active")
    assert_problem(
        await client.post(f"/api/v1/rollouts/{rollout['id']}/resume", headers=admin),
        409,
        "rollout_state",
    )
    paused = await client.post(
        f"/api/v1/rollouts/{rollout['id']}/pause", headers=admin, json={"reason": "lunch"}
    )
    assert (paused.status_code, paused.json()["state"], paused.json()["reason"]) == (
        200,
        "paused",
        "lunch",
    )
    assert_problem(
        await client.get("/api/v1/rollouts/nope", headers=admin), 404, "rollout_not_found"
    )
    timeline = (await client.get("/api/v1/orgs/org0/instance", headers=admin)).json()["events"]
    assert any(e["kind"] == "rollout.skipped" for e in timeline)
    await ui_login(client, "root@example.com")
    page = (await client.get("/ui/orgs/org0")).text
    assert f'id="image">{V1} <span class="muted">(pinned; rollouts skip it)' in page
    assert f'id="image">{V1}</dd>' in (await client.get("/ui/orgs/org1")).text
    dashboard = (await client.get("/ui/")).text
    attention = dashboard.split('id="attention"')[1].split("</section>")[0]
    versions = dashboard.split('id="versions"')[1].split("</ul>")[0]
    assert f'<strong>10</strong> 1.0 <span class="mono muted">{V1}</span>' in versions
    assert f'<strong>0</strong> 2.0 <span class="mono muted">{V2}</span>' in versions
    assert "Paused rollouts" in attention
    assert rollout["id"] in attention
    assert "lunch" in attention


def test_wave_sizes_are_cumulative() -> None:
    assert wave_sizes([1, "5%", "25%", "100%"], 100) == [1, 4, 20, 75]
    assert wave_sizes([1, "5%", "25%", "100%"], 3) == [1, 2]  # empty waves dropped
    assert wave_sizes([2], 5) == [2, 3]  # the rest form one more wave
    assert wave_sizes(["100%"], 1) == [1]
    with pytest.raises(BadRequest):
        wave_sizes([3, 2], 10)


def test_maintenance_windows_span_midnight_and_weekdays() -> None:
    window = MaintenanceWindow(org_id="x", weekdays=[0], start_minute=23 * 60, duration_minutes=120)
    monday_late = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # a Monday
    assert in_window(window, monday_late)
    assert in_window(window, datetime(2026, 12, 8, 0, 59, tzinfo=UTC))
    assert not in_window(window, datetime(2026, 12, 8, 1, 0, tzinfo=UTC))
    assert not in_window(window, datetime(2026, 12, 7, 22, 59, tzinfo=UTC))
    assert in_window(None, monday_late)


async def test_maintenance_window_api(client: AsyncTestClient[Any], admin: dict[str, str]) -> None:
    await make_org(client, admin, "window")
    path = "/api/v1/orgs/window/maintenance-window"
    assert_problem(await client.get(path, headers=admin), 404, "no_maintenance_window")
    bad = await client.put(
        path, headers=admin, json={"weekdays": [9], "start": "02:00", "duration_minutes": 60}
    )
    assert_problem(bad, 400, "invalid_maintenance_window")
    bad = await client.put(
        path, headers=admin, json={"weekdays": [1], "start": "25:00", "duration_minutes": 60}
    )
    assert_problem(bad, 400, "invalid_maintenance_window")
    good = {"weekdays": [5, 6], "start": "02:30", "duration_minutes": 90}
    assert (await client.put(path, headers=admin, json=good)).json() == good
    assert (await client.get(path, headers=admin)).json() == good
    assert (await client.delete(path, headers=admin)).status_code == 204
    assert_problem(await client.get(path, headers=admin), 404, "no_maintenance_window")


async def test_rollouts_over_disjoint_orgs_run_side_by_side(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await _register(client, admin, "1.0", V1)
    await _register(client, admin, "2.0", V2)
    await _register(client, admin, "3.0", "orgplane-instance:3.0")
    for n in range(4):
        org = await make_org(client, admin, f"side{n}")
        await _deployed(client, org["id"], V1)

    async def create(version: str, *slugs: str) -> Any:
        target = {"kind": "orgs", "orgs": list(slugs)} if slugs else {"kind": "all"}
        body = {"to_version": version, "target": target}
        return await client.post("/api/v1/rollouts", headers=admin, json=body)

    first = await create("2.0", "side0", "side1")
    assert first.status_code == 201, first.text
    beside = await create("3.0", "side2", "side3")  # other orgs: it runs beside the first
    assert beside.status_code == 201, beside.text
    ids = sorted([first.json()["id"], beside.json()["id"]])
    before = await _counts(client)
    overlap = assert_problem(await create("2.0", "side3", "side1"), 409, "rollout_active")
    assert (overlap["orgs"], overlap["rollouts"]) == (["side1", "side3"], ids)
    assert assert_problem(await create("3.0"), 409, "rollout_active")["orgs"] == [
        f"side{n}" for n in range(4)
    ]
    assert await _counts(client) == before  # a refusal writes nothing
    listed = (await client.get("/api/v1/rollouts", headers=admin)).json()["items"]
    assert {r["id"]: r["state"] for r in listed} == dict.fromkeys(ids, "running")
    # An org its active rollout is done with (a failed upgrade, rolled back) is free again.
    detail = (await client.get(f"/api/v1/rollouts/{first.json()['id']}", headers=admin)).json()
    done = detail["orgs"][0]
    async with direct_db(client) as db:
        query = select(RolloutOrg).where(
            RolloutOrg.rollout_id == detail["id"], RolloutOrg.org_id == done["org_id"]
        )
        row = (await db.exec(query)).one()
        row.state = "failed"
        db.add(row)
        await db.commit()
    again = await create("3.0", done["slug"])
    assert again.status_code == 201, again.text
