"""Orgs: create, slugs, read by id or slug, visibility, list, lookup, update."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import assert_problem
from tests.support.orgs import make_org, me_id, user


async def test_create_answers_202_pending_and_makes_the_caller_owner(
    client: AsyncTestClient[Any],
) -> None:
    alice = await user(client, "alice@example.com")
    org = await make_org(client, alice, "Acme", name="Acme Inc.")
    assert org["slug"] == "acme"
    assert (org["phase"], org["desired_state"], org["plan"]) == ("pending", "running", "free")
    assert org["role"] == "owner"
    assert org["parent_id"] is None
    assert org["features"] == ["chat", "files"]
    assert org["limits"]["max_members"] == 5
    assert set(org["limits"]) == {
        "max_sessions",
        "max_storage_bytes",
        "requests_per_minute",
        "max_runners",
        "max_members",
    }
    for ref in (org["id"], "acme", "ACME"):
        read = await client.get(f"/api/v1/orgs/{ref}", headers=alice)
        assert read.status_code == 200, read.text
        assert read.json()["id"] == org["id"]
    mine = (await client.get("/api/v1/me/orgs", headers=alice)).json()["items"]
    assert [(o["slug"], o["role"], o["phase"]) for o in mine] == [("acme", "owner", "pending")]


async def test_slug_rules_are_enforced_with_named_rules(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    invalid = {
        "ab": "3 to 40",
        "a" * 41: "3 to 40",
        "acme_co": "letters",
        "acmé": "letters",
        "-acme": "hyphen",
        "acme-": "hyphen",
        "xn--acme": "IDNA",
        "acme.co": "letters",
        "0123456789abcdef0123456789abcdef": "org id",
        "\u212acme": "letters",
    }
    for slug, rule in invalid.items():
        answer = await client.post("/api/v1/orgs", headers=alice, json={"name": "X", "slug": slug})
        body = assert_problem(answer, 400, "invalid_slug")
        assert rule in body["rule"], (slug, body)
        assert body["field"] == "slug"
    for slug in ("www", "API", "admin", "traefik", "control", "orgplane", "status"):
        answer = await client.post("/api/v1/orgs", headers=alice, json={"name": "X", "slug": slug})
        assert_problem(answer, 400, "slug_reserved")
    await make_org(client, alice, "Mixed-Case-9")
    taken = await client.post(
        "/api/v1/orgs", headers=alice, json={"name": "Again", "slug": "mixed-CASE-9"}
    )
    assert_problem(taken, 409, "slug_taken")
    listing = (await client.get("/api/v1/orgs", headers=alice)).json()["items"]
    assert [o["slug"] for o in listing] == ["mixed-case-9"]


async def test_orgs_of_others_answer_404_like_missing_ones(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    org = await make_org(client, alice, "alice-co")
    missing = assert_problem(await client.get("/api/v1/orgs/nope-co", headers=bob), 404)
    for ref in (org["id"], "alice-co"):
        hidden = assert_problem(await client.get(f"/api/v1/orgs/{ref}", headers=bob), 404)
        assert (hidden["code"], hidden["detail"]) == (missing["code"], missing["detail"])
        assert_problem(
            await client.patch(f"/api/v1/orgs/{ref}", headers=bob, json={"name": "Mine now"}),
            404,
            "org_not_found",
        )
        assert_problem(await client.get(f"/api/v1/orgs/{ref}/members", headers=bob), 404)
    assert (await client.get("/api/v1/orgs", headers=bob)).json()["items"] == []
    assert (await client.get("/api/v1/orgs/lookup?q=alice", headers=bob)).json() == []
    seen = await client.get(f"/api/v1/orgs/{org['id']}", headers=admin)
    assert seen.status_code == 200
    assert seen.json()["role"] is None


async def test_list_filters_searches_and_pages_by_slug(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice_id = await me_id(client, await user(client, "alice@example.com"))
    assert alice_id
    plans = {
        "delta": "team",
        "alpha": "free",
        "echo": "enterprise",
        "bravo": "team",
        "charlie": "free",
    }
    for slug, plan in plans.items():
        await make_org(client, admin, slug, name=f"{slug.upper()} 100%_Org", plan=plan)
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/orgs", headers=admin, params=params)).json()
        seen += [o["slug"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["alpha", "bravo", "charlie", "delta", "echo"]

    async def slugs(**params: str) -> list[str]:
        answer = await client.get("/api/v1/orgs", headers=admin, params=params)
        assert answer.status_code == 200, answer.text
        return [o["slug"] for o in answer.json()["items"]]

    assert await slugs(plan="team") == ["bravo", "delta"]
    assert await slugs(q="CHAR") == ["charlie"]
    assert await slugs(q="100%_") == sorted(plans)
    assert await slugs(q="%") == sorted(plans)
    assert await slugs(q="0%x") == []
    assert await slugs(phase="pending") == sorted(plans)
    assert await slugs(phase="running") == []
    for params, code in (
        ({"plan": "gold"}, "unknown_plan"),
        ({"phase": "weird"}, "unknown_phase"),
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"limit": "0"}, "invalid_limit"),
        ({"parent_id": "nope-nope"}, "org_not_found"),
    ):
        status = 404 if code == "org_not_found" else 400
        assert_problem(await client.get("/api/v1/orgs", headers=admin, params=params), status, code)


async def test_lookup_autocompletes_and_labels_known_ids(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    ids = [
        (await make_org(client, admin, f"team-{i:02d}", name=f"Team {i}"))["id"] for i in range(22)
    ]
    mine = await make_org(client, alice, "alices-team", name="Alice <Team>")
    found = (await client.get("/api/v1/orgs/lookup", headers=admin, params={"q": "team"})).json()
    assert len(found) == 20
    assert found[0] == {"value": mine["id"], "label": "Alice <Team> (alices-team)"}
    assert found[1] == {"value": ids[0], "label": "Team 0 (team-00)"}
    labels = await client.get(
        "/api/v1/orgs/lookup", headers=alice, params={"ids": f"{ids[3]},{mine['id']},unknown"}
    )
    assert labels.json() == [{"value": mine["id"], "label": "Alice <Team> (alices-team)"}]
    admin_labels = await client.get(
        "/api/v1/orgs/lookup", headers=admin, params={"ids": f"{ids[3]},{ids[1]}"}
    )
    assert [i["value"] for i in admin_labels.json()] == [ids[3], ids[1]]
    too_many = ",".join(["x" * 8] * 101)
    assert_problem(
        await client.get("/api/v1/orgs/lookup", headers=admin, params={"ids": too_many}),
        400,
        "too_many_ids",
    )


async def test_top_level_terms_and_other_owners_are_for_platform_admins(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    for extra in (
        {"plan": "team"},
        {"limits": {"max_members": 500}},
        {"features": {"sso": True}},
        {"owner_email": "alice@example.com"},
    ):
        answer = await client.post(
            "/api/v1/orgs", headers=alice, json={"name": "Big", "slug": "big-co", **extra}
        )
        assert_problem(answer, 403, "platform_admin_required")
    unknown = await client.post(
        "/api/v1/orgs",
        headers=admin,
        json={"name": "Big", "slug": "big-co", "owner_email": "ghost@example.com"},
    )
    assert_problem(unknown, 400, "owner_not_found")
    made = await make_org(
        client,
        admin,
        "big-co",
        plan="enterprise",
        owner_email="alice@example.com",
        features={"sso": False},
        limits={"max_members": 2000},
    )
    assert made["role"] is None
    assert "sso" not in made["features"]
    assert made["limits"]["max_members"] == 2000
    assert made["limit_overrides"] == {"max_members": 2000}
    read = (await client.get("/api/v1/orgs/big-co", headers=alice)).json()
    assert read["role"] == "owner"
    assert read["plan"] == "enterprise"


async def test_update_renames_and_governs_terms(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    org = await make_org(client, alice, "acme")
    renamed = await client.patch("/api/v1/orgs/acme", headers=alice, json={"name": "Acme 2"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Acme 2"
    assert renamed.json()["config_version"] == org["config_version"]
    unchanged = await client.patch(
        "/api/v1/orgs/acme", headers=alice, json={"name": "Acme 2", "plan": "free", "features": {}}
    )
    assert unchanged.status_code == 200, unchanged.text
    for terms in (
        {"plan": "enterprise"},
        {"limits": {"max_members": 999}},
        {"features": {"sso": True}},
    ):
        assert_problem(
            await client.patch("/api/v1/orgs/acme", headers=alice, json=terms),
            403,
            "parent_admin_required",
        )
    upgraded = await client.patch(
        "/api/v1/orgs/acme",
        headers=admin,
        json={"plan": "team", "features": {"files": False}, "limits": {"max_runners": 2}},
    )
    body = upgraded.json()
    assert upgraded.status_code == 200, upgraded.text
    assert body["config_version"] == org["config_version"] + 1
    assert body["features"] == ["api_access", "chat", "custom_domains"]
    assert body["limits"]["max_runners"] == 2
    assert body["limits"]["max_members"] == 50
    assert_problem(
        await client.patch(
            "/api/v1/orgs/acme", headers=admin, json={"features": {"teleport": True}}
        ),
        400,
        "unknown_feature",
    )
    assert_problem(
        await client.patch("/api/v1/orgs/acme", headers=admin, json={"limits": {"max_cats": 1}}),
        400,
        "unknown_limit",
    )
    assert_problem(
        await client.patch("/api/v1/orgs/acme", headers=admin, json={"plan": "platinum"}),
        400,
        "unknown_plan",
    )
    assert_problem(
        await client.patch("/api/v1/orgs/acme", headers=alice, json={"name": "  "}),
        400,
        "invalid_name",
    )
    same = (await client.get("/api/v1/orgs/acme", headers=alice)).json()
    assert same["config_version"] == body["config_version"]
    assert same["plan"] == "team"
