"""Audit log API: every write recorded, scoped reading, filters, append-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import assert_problem
from tests.support.orgs import add_member, make_org, me_id, user


async def _events(
    client: AsyncTestClient[Any], headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/audit", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_every_org_write_is_audited_newest_first(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    alice_id = await me_id(client, alice)
    await user(client, "bob@example.com")
    org = await make_org(client, alice, "acme")
    await client.patch("/api/v1/orgs/acme", headers=alice, json={"name": "Acme 2"})
    await add_member(client, alice, "acme", "bob@example.com", "member")
    invite = (
        await client.post(
            "/api/v1/orgs/acme/invites", headers=alice, json={"email": "new@example.com"}
        )
    ).json()
    await client.post("/api/v1/orgs/acme/suspend", headers=admin)
    await client.delete("/api/v1/orgs/acme?confirm=acme", headers=alice)
    events = await _events(client, admin, org_id=org["id"])
    assert [e["action"] for e in events] == [
        "org.delete_requested",
        "org.suspend",
        "invite.create",
        "member.add",
        "org.update",
        "org.create",
    ]
    assert {e["actor_id"] for e in events if e["action"] != "org.suspend"} == {alice_id}
    assert all(e["org_id"] == org["id"] and e["ip"] for e in events)
    assert invite["token"] not in str(events)
    created = events[-1]
    assert (created["target_type"], created["target_id"]) == ("org", org["id"])
    assert created["detail"]["slug"] == "acme"


async def test_org_admins_read_only_their_orgs_and_members_read_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    carol = await user(client, "carol@example.com")
    acme = await make_org(client, alice, "acme")
    bobco = await make_org(client, bob, "bobco")
    child = await make_org(client, alice, "acme-eng", parent_id="acme")
    await add_member(client, alice, "acme", "carol@example.com", "member")
    mine = await _events(client, alice)
    assert {e["org_id"] for e in mine} == {acme["id"], child["id"]}
    assert [e["org_id"] for e in await _events(client, alice, org_id="acme-eng")] == [child["id"]]
    assert_problem(
        await client.get("/api/v1/audit", headers=alice, params={"org_id": bobco["id"]}),
        404,
        "org_not_found",
    )
    assert_problem(
        await client.get("/api/v1/audit", headers=carol, params={"org_id": "acme"}),
        403,
        "admin_required",
    )
    assert_problem(await client.get("/api/v1/audit", headers=carol), 403, "admin_required")
    logins = await _events(client, admin, action="auth.login")
    assert {e["actor_email"] for e in logins} >= {"alice@example.com", "bob@example.com"}
    assert all(e["action"] != "auth.login" for e in mine)


async def test_filters_by_actor_action_time_and_pages(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    alice_id = await me_id(client, alice)
    start = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(3):
        await make_org(client, alice, f"org-{i}")
    await client.patch("/api/v1/orgs/org-0", headers=alice, json={"name": "Zero"})
    created = await _events(client, admin, action="org.create", actor_id=alice_id)
    assert len(created) == 3
    assert {e["action"] for e in await _events(client, admin, action="org.*")} == {
        "org.create",
        "org.update",
    }
    assert await _events(client, admin, action="org%") == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await _events(client, admin, since=future) == []
    assert len(await _events(client, admin, action="org.*", since=start.isoformat())) == 4
    assert await _events(client, admin, action="org.*", until=start.isoformat()) == []
    seen, cursor = [], None
    for _ in range(5):
        params = {"action": "org.*", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/audit", headers=admin, params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4
    assert seen == sorted(seen, reverse=True)
    assert_problem(
        await client.get("/api/v1/audit", headers=admin, params={"since": "yesterday"}),
        400,
        "validation_error",
    )
    assert_problem(
        await client.get("/api/v1/audit", headers=admin, params={"cursor": "bm9wZQ=="}),
        400,
        "invalid_cursor",
    )


async def test_the_audit_log_cannot_be_changed_through_the_api(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, admin, "acme")
    event_id = (await _events(client, admin))[0]["id"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/api/v1/audit", f"/api/v1/audit/{event_id}"):
            answer = await client.request(method, path, headers=admin, json={})
            assert answer.status_code in (404, 405), (method, path, answer.status_code)
            assert_problem(answer, answer.status_code)
    audit_routes = [r for r in client.app.routes if r.path.startswith("/api/v1/audit")]
    assert {m for r in audit_routes for m in r.methods} <= {"GET", "HEAD", "OPTIONS"}
    assert (await _events(client, admin))[0]["id"] == event_id
