"""The staff approval gate covers every staff path, not only the token exchange.

Where an org requires approved staff access, a platform admin without an approved, unexpired
request gets nothing of the tenant's: no members, invites, domains, backups, export, import,
restore or instance action, and cannot make itself (or an account it controls) a member. Org
owners switch the requirement; every staff action in an org is marked as such in its audit
record."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import col, func, select

from control_plane.db.models import AccessRequest, AuditEvent, Membership, Org, utcnow
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.tokens import make_org

REASON = "ticket 4711: login loop"


async def _world(client: AsyncTestClient[Any], *, gated: bool = True) -> dict[str, Any]:
    """Staff, a second platform admin, an owner and a member around org ``acme``."""
    w: dict[str, Any] = {
        "staff_id": await add_user(client, "staff@orgplane.test", admin=True),
        "peer_id": await add_user(client, "peer@orgplane.test", admin=True),
        "owner_id": await add_user(client, "owner@acme.test"),
        "member_id": await add_user(client, "member@acme.test"),
        "carol_id": await add_user(client, "carol@else.test"),
    }
    w["org_id"] = await make_org(
        client,
        "acme",
        members={w["owner_id"]: "owner", w["member_id"]: "member"},
        require_access_approval=gated,
    )
    for name in ("staff", "owner", "member"):
        email = "staff@orgplane.test" if name == "staff" else f"{name}@acme.test"
        w[name] = await login(client, email)
    return w


async def _members(client: AsyncTestClient[Any], org_id: str) -> int:
    async with direct_db(client) as db:
        query = select(func.count()).select_from(Membership).where(Membership.org_id == org_id)
        return int((await db.exec(query)).one())


async def _approve(client: AsyncTestClient[Any], w: dict[str, Any]) -> str:
    base = f"/api/v1/orgs/{w['org_id']}/access-requests"
    filed = await client.post(base, headers=w["staff"], json={"reason": REASON})
    assert filed.status_code == 201, filed.text
    approved = await client.post(f"{base}/{filed.json()['id']}/approve", headers=w["owner"])
    assert approved.status_code == 200, approved.text
    return str(filed.json()["id"])


async def test_unapproved_staff_get_nothing_of_the_tenant(client: AsyncTestClient[Any]) -> None:
    """Failed on the old code: the gate held only at the token exchange; here staff added an
    account as a member (201), read the member list (200), renamed the org (200) and reached
    export and backups (409 instance_not_running, i.e. past every access check)."""
    w = await _world(client)
    org = f"/api/v1/orgs/{w['org_id']}"
    staff = w["staff"]
    attempts = [
        ("GET", f"{org}/members", None),
        ("POST", f"{org}/members", {"user_id": w["staff_id"], "role": "owner"}),
        ("POST", f"{org}/members", {"user_id": w["carol_id"], "role": "member"}),
        ("PATCH", f"{org}/members/{w['member_id']}", {"role": "admin"}),
        ("DELETE", f"{org}/members/{w['member_id']}", None),
        ("POST", f"{org}/invites", {"email": "staff@orgplane.test", "role": "owner"}),
        ("GET", f"{org}/invites", None),
        ("GET", f"{org}/domains", None),
        ("POST", f"{org}/domains", {"hostname": "shop.example.org"}),
        ("GET", f"{org}/export", None),
        ("POST", f"{org}/backups", None),
        ("GET", f"{org}/backups", None),
        ("POST", f"{org}/restore", {"backup_id": "x" * 32, "confirm": "acme"}),
        ("POST", f"{org}/instance/actions", {"action": "stop"}),
        ("PATCH", org, {"name": "Taken over"}),
        ("PUT", f"{org}/access-approval", {"required": False}),
    ]
    for method, url, body in attempts:
        answer = await client.request(method, url, headers=staff, json=body)
        code = "owner_required" if url.endswith("access-approval") else "approval_required"
        assert_problem(answer, 403, code)
    imported = await client.post(f"{org}/import?confirm=acme", headers=staff, content=b"x")
    assert_problem(imported, 403, "approval_required")
    assert await _members(client, w["org_id"]) == 2
    async with direct_db(client) as db:
        row = await db.get(Org, w["org_id"])
        assert row is not None
        assert (row.name, row.require_access_approval) == ("Acme", True)

    # What stays: the registry row, the gate's own endpoints and the platform's metering.
    seen = await client.get(org, headers=staff)
    assert seen.status_code == 200
    assert seen.json()["require_access_approval"] is True
    assert (await client.get(f"{org}/access-requests", headers=staff)).status_code == 200
    assert (await client.get(f"{org}/usage", headers=staff)).status_code == 200


async def test_a_platform_admin_member_acts_only_with_its_role_behind_the_gate(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: a platform admin who is a mere member acted as an owner
    (renamed the org, 200)."""
    w = await _world(client)
    async with direct_db(client) as db:
        db.add(Membership(user_id=w["staff_id"], org_id=w["org_id"], role="member"))
        await db.commit()
    org = f"/api/v1/orgs/{w['org_id']}"
    assert (await client.get(f"{org}/members", headers=w["staff"])).status_code == 200
    renamed = await client.patch(org, headers=w["staff"], json={"name": "Mine"})
    assert_problem(renamed, 403, "approval_required")


async def test_approved_staff_act_but_never_make_themselves_members(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: approved (or not) staff added another platform admin and an
    account they had just created (201 each), and invited their own email (201): memberships
    that outlive the approval. (Adding themselves was already 403 ``self_promotion``.)"""
    w = await _world(client)
    request_id = await _approve(client, w)
    org = f"/api/v1/orgs/{w['org_id']}"
    staff = w["staff"]
    made = await client.post(
        "/api/v1/users",
        headers=staff,
        json={"email": "sock@else.test", "password": PASSWORD},
    )
    assert made.status_code == 201, made.text
    for user_id in (w["staff_id"], w["peer_id"], made.json()["id"]):
        refused = await client.post(
            f"{org}/members", headers=staff, json={"user_id": user_id, "role": "member"}
        )
        assert_problem(refused, 403, "staff_self_grant")
    for email in ("staff@orgplane.test", "STAFF@orgplane.test", "sock@else.test"):
        invited = await client.post(
            f"{org}/invites", headers=staff, json={"email": email, "role": "member"}
        )
        assert_problem(invited, 403, "staff_self_grant")
    assert await _members(client, w["org_id"]) == 2

    added = await client.post(
        f"{org}/members", headers=staff, json={"user_id": w["carol_id"], "role": "member"}
    )
    assert added.status_code == 201, added.text
    async with direct_db(client) as db:
        event = (
            await db.exec(select(AuditEvent).where(col(AuditEvent.action) == "member.add"))
        ).one()
    assert event.detail["staff"] == {"approval": request_id}

    async with direct_db(client) as db:
        row = await db.get(AccessRequest, request_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        await db.commit()
    expired = await client.get(f"{org}/members", headers=staff)
    assert_problem(expired, 403, "approval_required")


async def test_staff_never_join_through_an_invite(client: AsyncTestClient[Any]) -> None:
    """Failed on the old code: the platform admin accepted an owner's invite (200), and an
    account the approved staff member created for an invite they sent accepted it (200)."""
    w = await _world(client)
    org = f"/api/v1/orgs/{w['org_id']}"
    to_staff = await client.post(
        f"{org}/invites", headers=w["owner"], json={"email": "staff@orgplane.test", "role": "admin"}
    )
    assert to_staff.status_code == 201, to_staff.text
    accepted = await client.post(
        "/api/v1/invites/accept", headers=w["staff"], json={"token": to_staff.json()["token"]}
    )
    assert_problem(accepted, 403, "approval_required")

    await _approve(client, w)
    sent = await client.post(
        f"{org}/invites", headers=w["staff"], json={"email": "fresh@else.test", "role": "member"}
    )
    assert sent.status_code == 201, sent.text
    made = await client.post(
        "/api/v1/users", headers=w["staff"], json={"email": "fresh@else.test", "password": PASSWORD}
    )
    assert made.status_code == 201, made.text
    fresh = await login(client, "fresh@else.test")
    taken = await client.post(
        "/api/v1/invites/accept", headers=fresh, json={"token": sent.json()["token"]}
    )
    assert_problem(taken, 403, "staff_self_grant")
    assert await _members(client, w["org_id"]) == 2


async def test_owners_switch_the_gate_and_it_is_audited(client: AsyncTestClient[Any]) -> None:
    """Failed on the old code: there was no way to switch it (404 on the endpoint)."""
    w = await _world(client, gated=False)
    url = f"/api/v1/orgs/{w['org_id']}/access-approval"
    assert_problem(
        await client.put(url, headers=w["member"], json={"required": True}), 403, "owner_required"
    )
    assert_problem(
        await client.put(url, headers=w["staff"], json={"required": True}), 403, "owner_required"
    )
    outsider = await login(client, "carol@else.test")
    assert_problem(
        await client.put(url, headers=outsider, json={"required": True}), 404, "org_not_found"
    )
    assert_problem(
        await client.put(url, headers=w["owner"], json={"required": "yes"}), 400, "validation_error"
    )
    on = await client.put(url, headers=w["owner"], json={"required": True})
    assert on.status_code == 200, on.text
    assert on.json()["require_access_approval"] is True
    assert_problem(
        await client.get(f"/api/v1/orgs/{w['org_id']}/members", headers=w["staff"]),
        403,
        "approval_required",
    )
    off = await client.put(url, headers=w["owner"], json={"required": False})
    assert off.json()["require_access_approval"] is False
    async with direct_db(client) as db:
        events = (
            await db.exec(
                select(AuditEvent)
                .where(col(AuditEvent.action) == "org.access_approval")
                .order_by(col(AuditEvent.id))
            )
        ).all()
    assert [(e.actor_id, e.detail["required"]) for e in events] == [
        (w["owner_id"], True),
        (w["owner_id"], False),
    ]


async def test_staff_actions_without_a_gate_say_they_were_staff(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: a staff member's ``member.add`` in an org without the gate was
    recorded like any admin's, with nothing saying it was support access."""
    w = await _world(client, gated=False)
    org = f"/api/v1/orgs/{w['org_id']}"
    added = await client.post(
        f"{org}/members", headers=w["staff"], json={"user_id": w["carol_id"], "role": "member"}
    )
    assert added.status_code == 201, added.text
    by_owner = await client.patch(
        f"{org}/members/{w['carol_id']}", headers=w["owner"], json={"role": "admin"}
    )
    assert by_owner.status_code == 200, by_owner.text
    async with direct_db(client) as db:
        events = (
            await db.exec(
                select(AuditEvent)
                .where(col(AuditEvent.action).in_(["member.add", "member.update"]))
                .order_by(col(AuditEvent.id))
            )
        ).all()
    assert [(e.action, e.detail.get("staff")) for e in events] == [
        ("member.add", {"approval": None}),
        ("member.update", None),
    ]
