"""Org lifecycle: suspend, resume, delete with confirmation and window, lock, finalize."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import select

from control_plane.db.models import AuditEvent, Org
from control_plane.orgs.lifecycle import finalize_due_deletions
from tests.support.api import assert_problem, direct_db
from tests.support.orgs import add_member, make_org, user


async def test_suspend_and_resume_change_desired_state_and_bump_generation(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    org = await make_org(client, alice, "acme")
    assert_problem(
        await client.post("/api/v1/orgs/acme/suspend", headers=alice), 403, "parent_admin_required"
    )
    suspended = await client.post("/api/v1/orgs/acme/suspend", headers=admin)
    assert suspended.status_code == 202, suspended.text
    body = suspended.json()
    assert (body["suspended"], body["desired_state"]) == (True, "stopped")
    assert body["generation"] == org["generation"] + 1
    assert body["config_version"] == org["config_version"] + 1
    again = (await client.post("/api/v1/orgs/acme/suspend", headers=admin)).json()
    assert again["generation"] == body["generation"]
    resumed = (await client.post("/api/v1/orgs/acme/resume", headers=admin)).json()
    assert (resumed["suspended"], resumed["desired_state"]) == (False, "running")
    assert resumed["generation"] == org["generation"] + 2


async def test_delete_needs_the_slug_and_opens_a_cancellable_window(
    client: AsyncTestClient[Any],
) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    await make_org(client, alice, "acme")
    await add_member(client, alice, "acme", "bob@example.com", "admin")
    assert_problem(
        await client.delete("/api/v1/orgs/acme", headers=alice), 400, "confirmation_required"
    )
    assert_problem(
        await client.delete("/api/v1/orgs/acme?confirm=acme-co", headers=alice),
        400,
        "confirmation_mismatch",
    )
    assert_problem(
        await client.delete("/api/v1/orgs/acme?confirm=acme", headers=bob), 403, "owner_required"
    )
    before = datetime.now(UTC)
    pending = await client.delete("/api/v1/orgs/acme?confirm=acme", headers=alice)
    assert pending.status_code == 202, pending.text
    delete_after = datetime.fromisoformat(pending.json()["delete_after"])
    assert before + timedelta(seconds=299) < delete_after < before + timedelta(seconds=330)
    repeat = await client.delete("/api/v1/orgs/acme?confirm=acme", headers=alice)
    assert repeat.json()["delete_after"] == pending.json()["delete_after"]
    listed = (await client.get("/api/v1/orgs", headers=alice)).json()["items"]
    assert [o["delete_after"] for o in listed] == [pending.json()["delete_after"]]
    cancelled = await client.post("/api/v1/orgs/acme/deletion/cancel", headers=alice)
    assert cancelled.status_code == 200
    assert cancelled.json()["delete_after"] is None
    assert_problem(
        await client.post("/api/v1/orgs/acme/deletion/cancel", headers=alice),
        409,
        "no_pending_deletion",
    )


async def test_a_locked_org_refuses_deletion(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    await make_org(client, alice, "acme")
    await add_member(client, alice, "acme", "bob@example.com", "admin")
    assert_problem(await client.post("/api/v1/orgs/acme/lock", headers=bob), 403, "owner_required")
    pending = await client.delete("/api/v1/orgs/acme?confirm=acme", headers=alice)
    assert pending.json()["delete_after"] is not None
    locked = await client.post("/api/v1/orgs/acme/lock", headers=admin)
    assert locked.status_code == 200, locked.text
    assert locked.json()["deletion_locked"] is True
    assert locked.json()["delete_after"] is None
    assert_problem(
        await client.delete("/api/v1/orgs/acme?confirm=acme", headers=alice), 403, "deletion_locked"
    )
    unlocked = await client.post("/api/v1/orgs/acme/unlock", headers=alice)
    assert unlocked.json()["deletion_locked"] is False
    again = await client.delete("/api/v1/orgs/acme?confirm=acme", headers=alice)
    assert again.status_code == 202


async def test_orgs_with_children_are_not_deleted(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    await make_org(client, alice, "corp")
    await make_org(client, alice, "corp-eng", parent_id="corp")
    assert_problem(
        await client.delete("/api/v1/orgs/corp?confirm=corp", headers=alice), 409, "has_children"
    )


async def test_finalized_orgs_disappear_but_keep_their_slug(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    gone = await make_org(client, alice, "gone-co", name="Gone Co")
    kept = await make_org(client, alice, "kept-co")
    for slug in ("gone-co", "kept-co"):
        answer = await client.delete(f"/api/v1/orgs/{slug}?confirm={slug}", headers=alice)
        assert answer.status_code == 202
    async with direct_db(client) as db:
        assert await finalize_due_deletions(db) == []
        past = datetime.now(UTC) - timedelta(seconds=1)
        await db.exec(update(Org).values(delete_after=past))
        # A lock set behind the API's back still wins over a passed window.
        await db.exec(update(Org).where(Org.slug == "kept-co").values(deletion_locked=True))
        await db.commit()
        assert await finalize_due_deletions(db) == [gone["id"]]
        assert await finalize_due_deletions(db) == []
        row = await db.get(Org, gone["id"])
        assert row is not None
        assert (row.desired_state, row.generation) == ("deleted", gone["generation"] + 1)
        events = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "org.delete_finalized"))
        ).all()
        assert [e.org_id for e in events] == [gone["id"]]
    for who in (alice, admin):
        assert_problem(await client.get(f"/api/v1/orgs/{gone['id']}", headers=who), 404)
        slugs = [o["slug"] for o in (await client.get("/api/v1/orgs", headers=who)).json()["items"]]
        assert slugs == ["kept-co"]
        found = (
            await client.get(
                "/api/v1/orgs/lookup", headers=who, params={"ids": f"{gone['id']},{kept['id']}"}
            )
        ).json()
        assert [f["value"] for f in found] == [kept["id"]]
    mine = (await client.get("/api/v1/me/orgs", headers=alice)).json()["items"]
    assert [o["slug"] for o in mine] == ["kept-co"]
    reuse = await client.post(
        "/api/v1/orgs", headers=alice, json={"name": "New", "slug": "gone-co"}
    )
    assert_problem(reuse, 409, "slug_taken")
