"""The org hierarchy: inherited features, carved-out limits, cycles, depth, parent admins."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import Org
from control_plane.orgs.hierarchy import ancestors, effective_features, effective_limits
from tests.support.api import assert_problem, direct_db
from tests.support.orgs import add_member, make_org, user


async def test_children_inherit_features_unless_they_override_them(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    await make_org(
        client,
        admin,
        "corp",
        plan="team",
        owner_email="alice@example.com",
        features={"sso": True, "files": False},
    )
    child = await make_org(client, alice, "corp-eng", parent_id="corp")
    assert child["plan"] == "team"
    assert child["role"] == "owner"
    assert child["features"] == ["api_access", "chat", "custom_domains", "sso"]
    refused = await client.post(
        "/api/v1/orgs",
        headers=alice,
        json={
            "name": "Web",
            "slug": "corp-eng-web",
            "parent_id": child["id"],
            "features": {"files": True},
        },
    )
    assert_problem(refused, 403, "feature_not_in_parent")
    grandchild = await make_org(
        client, admin, "corp-eng-web", parent_id=child["id"], features={"sso": False, "files": True}
    )
    assert grandchild["features"] == ["api_access", "chat", "custom_domains", "files"]
    async with direct_db(client) as db:
        org = (await db.exec(select(Org).where(Org.slug == "corp-eng-web"))).one()
        assert [a.slug for a in await ancestors(db, org)] == ["corp-eng", "corp"]
        assert await effective_features(db, org) == grandchild["features"]
        assert await effective_limits(db, org) == grandchild["limits"]
    # A parent's new override reaches its children, whose config_version moves with it.
    await client.patch("/api/v1/orgs/corp", headers=admin, json={"features": {"files": True}})
    again = (await client.get("/api/v1/orgs/corp-eng", headers=alice)).json()
    assert "files" in again["features"]
    assert "sso" not in again["features"]
    assert again["config_version"] == child["config_version"] + 1


async def test_children_quotas_are_carved_out_of_the_parent(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    await make_org(client, admin, "corp", plan="team", owner_email="alice@example.com")
    # team allows 5 runners; each free child takes 1 of them.
    for i in range(5):
        await make_org(client, alice, f"unit-{i}", parent_id="corp", plan="free")
    sixth = await client.post(
        "/api/v1/orgs",
        headers=alice,
        json={"name": "Six", "slug": "unit-5", "parent_id": "corp", "plan": "free"},
    )
    body = assert_problem(sixth, 409, "quota_exceeded")
    assert (body["limit"], body["parent_limit"], body["requested_total"]) == ("max_runners", 5, 6)
    fits = await make_org(
        client, alice, "unit-5", parent_id="corp", plan="free", limits={"max_runners": 0}
    )
    assert fits["limits"]["max_runners"] == 0
    shrink = await client.patch(
        "/api/v1/orgs/corp", headers=admin, json={"limits": {"max_runners": 4}}
    )
    assert_problem(shrink, 409, "quota_exceeded")
    grow = await client.patch(
        "/api/v1/orgs/unit-0", headers=alice, json={"limits": {"max_runners": 2}}
    )
    assert_problem(grow, 409, "quota_exceeded")
    freed = await client.patch(
        "/api/v1/orgs/unit-1", headers=alice, json={"limits": {"max_runners": 0}}
    )
    assert freed.status_code == 200, freed.text
    grown = await client.patch(
        "/api/v1/orgs/unit-0", headers=alice, json={"limits": {"max_runners": 2}}
    )
    assert grown.status_code == 200
    assert grown.json()["limits"]["max_runners"] == 2
    listing = await client.get("/api/v1/orgs", headers=alice, params={"parent_id": "corp"})
    assert len(listing.json()["items"]) == 6


async def test_parent_admins_manage_children_and_members_of_parents_do_not_see_them(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    carol = await user(client, "carol@example.com")
    dave = await user(client, "dave@example.com")
    await make_org(client, alice, "corp")
    await add_member(client, alice, "corp", "bob@example.com", "admin")
    await add_member(client, alice, "corp", "carol@example.com", "member")
    child = await make_org(client, alice, "corp-eng", parent_id="corp")
    await add_member(client, alice, "corp-eng", "dave@example.com", "owner")
    as_bob = await client.get("/api/v1/orgs/corp-eng", headers=bob)
    assert as_bob.status_code == 200
    assert as_bob.json()["role"] == "admin"
    renamed = await client.patch("/api/v1/orgs/corp-eng", headers=bob, json={"name": "Eng"})
    assert renamed.status_code == 200, renamed.text
    assert_problem(await client.get(f"/api/v1/orgs/{child['id']}", headers=carol), 404)
    mine = {
        o["slug"]: o["role"]
        for o in (await client.get("/api/v1/me/orgs", headers=bob)).json()["items"]
    }
    assert mine == {"corp": "admin", "corp-eng": "admin"}
    # The child's own owner may not raise the child's terms; the parent's admins may.
    assert_problem(
        await client.patch(
            "/api/v1/orgs/corp-eng", headers=dave, json={"limits": {"max_members": 1}}
        ),
        403,
        "parent_admin_required",
    )
    assert_problem(
        await client.post("/api/v1/orgs/corp-eng/suspend", headers=dave),
        403,
        "parent_admin_required",
    )
    suspended = await client.post("/api/v1/orgs/corp-eng/suspend", headers=bob)
    assert suspended.status_code == 202
    assert suspended.json()["suspended"] is True
    # Members of the parent cannot create children; neither can strangers (404).
    body = {"name": "X", "slug": "corp-x", "parent_id": "corp"}
    assert_problem(
        await client.post("/api/v1/orgs", headers=carol, json=body), 403, "admin_required"
    )
    stranger = await user(client, "erin@example.com")
    assert_problem(
        await client.post("/api/v1/orgs", headers=stranger, json=body), 404, "org_not_found"
    )


async def test_child_terms_stay_within_the_parent_for_non_staff(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    await make_org(client, alice, "small")
    over_plan = await client.post(
        "/api/v1/orgs",
        headers=alice,
        json={"name": "Big", "slug": "small-big", "parent_id": "small", "plan": "team"},
    )
    assert_problem(over_plan, 403, "plan_exceeds_parent")
    over_feature = await client.post(
        "/api/v1/orgs",
        headers=alice,
        json={"name": "Sso", "slug": "small-sso", "parent_id": "small", "features": {"sso": True}},
    )
    assert_problem(over_feature, 403, "feature_not_in_parent")
    staff_made = await make_org(
        client,
        admin,
        "small-sso",
        parent_id="small",
        features={"sso": True},
        limits={"max_members": 1},
    )
    assert "sso" in staff_made["features"]


async def test_cycles_and_too_deep_trees_are_refused(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    parent = None
    for level in range(5):
        org = await make_org(
            client, alice, f"level-{level}", **({"parent_id": parent} if parent else {})
        )
        parent = org["id"]
    too_deep = await client.post(
        "/api/v1/orgs", headers=alice, json={"name": "Deep", "slug": "level-5", "parent_id": parent}
    )
    assert_problem(too_deep, 400, "hierarchy_too_deep")
    for target in ("level-0", "level-2", "level-4"):
        cycle = await client.patch(
            "/api/v1/orgs/level-0", headers=admin, json={"parent_id": target}
        )
        assert_problem(cycle, 409, "hierarchy_cycle")
    other = await make_org(client, alice, "other")
    deepen = await client.patch(
        "/api/v1/orgs/level-0", headers=admin, json={"parent_id": other["id"]}
    )
    assert_problem(deepen, 400, "hierarchy_too_deep")
    moved = await client.patch("/api/v1/orgs/level-4", headers=alice, json={"parent_id": "other"})
    assert moved.status_code == 200
    assert moved.json()["parent_id"] == other["id"]
    assert_problem(
        await client.patch("/api/v1/orgs/level-4", headers=alice, json={"parent_id": None}),
        403,
        "platform_admin_required",
    )
    top = await client.patch("/api/v1/orgs/level-4", headers=admin, json={"parent_id": None})
    assert top.status_code == 200
    assert top.json()["parent_id"] is None
