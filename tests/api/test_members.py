"""Memberships: list, add, change, remove; the last owner; no self-promotion; my orgs."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import add_user, assert_problem
from tests.support.orgs import add_member, make_org, me_id, user


async def _roles(client: AsyncTestClient[Any], headers: dict[str, str], org: str) -> dict[str, str]:
    answer = await client.get(f"/api/v1/orgs/{org}/members", headers=headers)
    assert answer.status_code == 200, answer.text
    return {m["email"]: m["role"] for m in answer.json()["items"]}


async def test_admins_add_members_and_members_see_them(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    carol_id = await add_user(client, "carol@example.com")
    await user(client, "dave@example.com")
    await make_org(client, alice, "acme")
    await add_member(client, alice, "acme", "bob@example.com", "admin")
    by_id = await client.post(
        "/api/v1/orgs/acme/members", headers=bob, json={"user_id": carol_id, "role": "member"}
    )
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["email"] == "carol@example.com"
    carol = await user(client, "carol2@example.com")
    await add_member(client, alice, "acme", "carol2@example.com", "member")
    pages, cursor = [], None
    for _ in range(4):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/orgs/acme/members", headers=carol, params=params)).json()
        pages.append([m["email"] for m in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [
        ["alice@example.com", "bob@example.com"],
        ["carol2@example.com", "carol@example.com"],
    ]
    add = {"email": "dave@example.com", "role": "member"}
    assert_problem(
        await client.post("/api/v1/orgs/acme/members", headers=carol, json=add),
        403,
        "admin_required",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs/acme/members",
            headers=bob,
            json={"email": "bob@example.com", "role": "member"},
        ),
        409,
        "already_member",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs/acme/members", headers=bob, json={"email": "ghost@example.com"}
        ),
        404,
        "user_not_found",
    )
    assert_problem(
        await client.post("/api/v1/orgs/acme/members", headers=bob, json={"role": "member"}),
        400,
        "user_required",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs/acme/members",
            headers=bob,
            json={"email": "dave@example.com", "role": "god"},
        ),
        400,
        "validation_error",
    )


async def test_an_org_always_keeps_an_owner(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    alice_id = await me_id(client, alice)
    await user(client, "dave@example.com")
    await make_org(client, alice, "acme")
    assert_problem(
        await client.patch(
            f"/api/v1/orgs/acme/members/{alice_id}", headers=alice, json={"role": "admin"}
        ),
        409,
        "last_owner",
    )
    assert_problem(
        await client.delete(f"/api/v1/orgs/acme/members/{alice_id}", headers=alice),
        409,
        "last_owner",
    )
    await add_member(client, alice, "acme", "dave@example.com", "owner")
    stepped = await client.patch(
        f"/api/v1/orgs/acme/members/{alice_id}", headers=alice, json={"role": "admin"}
    )
    assert stepped.status_code == 200
    assert stepped.json()["role"] == "admin"
    assert await _roles(client, alice, "acme") == {
        "alice@example.com": "admin",
        "dave@example.com": "owner",
    }


async def test_nobody_raises_their_own_role_and_owners_guard_owners(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    alice_id = await me_id(client, alice)
    bob = await user(client, "bob@example.com")
    bob_id = await me_id(client, bob)
    carol = await user(client, "carol@example.com")
    carol_id = await me_id(client, carol)
    await make_org(client, alice, "acme")
    await add_member(client, alice, "acme", "bob@example.com", "admin")
    await add_member(client, alice, "acme", "carol@example.com", "member")
    cases = [
        (bob, bob_id, "owner", "self_promotion"),
        (carol, carol_id, "admin", "admin_required"),
        (bob, carol_id, "owner", "owner_required"),
        (bob, alice_id, "member", "owner_required"),
    ]
    for headers, target, role, code in cases:
        answer = await client.patch(
            f"/api/v1/orgs/acme/members/{target}", headers=headers, json={"role": role}
        )
        assert_problem(answer, 403, code)
    assert_problem(
        await client.delete(f"/api/v1/orgs/acme/members/{alice_id}", headers=bob),
        403,
        "owner_required",
    )
    assert_problem(
        await client.delete(f"/api/v1/orgs/acme/members/{bob_id}", headers=carol),
        403,
        "admin_required",
    )
    staff_self = await client.post(
        "/api/v1/orgs/acme/members",
        headers=admin,
        json={"email": "root@example.com", "role": "member"},
    )
    assert_problem(staff_self, 403, "self_promotion")
    demoted = await client.patch(
        f"/api/v1/orgs/acme/members/{bob_id}", headers=bob, json={"role": "member"}
    )
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "member"
    assert await _roles(client, alice, "acme") == {
        "alice@example.com": "owner",
        "bob@example.com": "member",
        "carol@example.com": "member",
    }


async def test_members_leave_and_then_lose_sight_of_the_org(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    carol = await user(client, "carol@example.com")
    carol_id = await me_id(client, carol)
    await make_org(client, alice, "acme")
    await add_member(client, alice, "acme", "carol@example.com", "member")
    left = await client.delete(f"/api/v1/orgs/acme/members/{carol_id}", headers=carol)
    assert left.status_code == 204, left.text
    assert_problem(await client.get("/api/v1/orgs/acme", headers=carol), 404, "org_not_found")
    assert (await client.get("/api/v1/me/orgs", headers=carol)).json()["items"] == []
    assert_problem(
        await client.delete(f"/api/v1/orgs/acme/members/{carol_id}", headers=alice),
        404,
        "member_not_found",
    )


async def test_an_org_holds_at_most_its_member_limit(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    await make_org(client, alice, "acme")
    for i in range(5):
        await add_user(client, f"user{i}@example.com")
    for i in range(4):
        await add_member(client, alice, "acme", f"user{i}@example.com", "member")
    full = await client.post(
        "/api/v1/orgs/acme/members", headers=alice, json={"email": "user4@example.com"}
    )
    assert_problem(full, 409, "member_limit_reached")
    assert len(await _roles(client, alice, "acme")) == 5


async def test_paths_naming_other_orgs_or_non_members_answer_404(
    client: AsyncTestClient[Any],
) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    bob_id = await me_id(client, bob)
    await make_org(client, alice, "acme")
    await make_org(client, bob, "bobco")
    assert_problem(
        await client.patch(
            f"/api/v1/orgs/acme/members/{bob_id}", headers=alice, json={"role": "member"}
        ),
        404,
        "member_not_found",
    )
    assert_problem(
        await client.patch(
            f"/api/v1/orgs/bobco/members/{bob_id}", headers=alice, json={"role": "member"}
        ),
        404,
        "org_not_found",
    )
    assert_problem(
        await client.delete(f"/api/v1/orgs/bobco/members/{bob_id}", headers=alice),
        404,
        "org_not_found",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs/bobco/members", headers=alice, json={"email": "alice@example.com"}
        ),
        404,
        "org_not_found",
    )
    assert await _roles(client, bob, "bobco") == {"bob@example.com": "owner"}
