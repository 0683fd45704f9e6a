"""Invites: token shown once and stored hashed, accepted once by the matching email, revoke,
resend, expiry, and who may invite whom."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import select

from control_plane.db.models import AuditEvent, Invite
from tests.support.api import assert_problem, direct_db
from tests.support.orgs import add_member, make_org, user


async def _invite(
    client: AsyncTestClient[Any],
    headers: dict[str, str],
    org: str,
    email: str,
    role: str = "member",
) -> dict[str, Any]:
    answer = await client.post(
        f"/api/v1/orgs/{org}/invites", headers=headers, json={"email": email, "role": role}
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_an_invite_is_accepted_once_by_the_invited_email(
    client: AsyncTestClient[Any],
) -> None:
    alice = await user(client, "alice@example.com")
    org = await make_org(client, alice, "acme")
    before = datetime.now(UTC)
    invite = await _invite(client, alice, "acme", " New@Example.com", role="admin")
    assert invite["token"].startswith("opv_")
    assert invite["status"] == "pending"
    assert invite["email"] == "new@example.com"
    expires = datetime.fromisoformat(invite["expires_at"])
    assert before + timedelta(days=7) - timedelta(minutes=1) < expires < before + timedelta(days=8)
    listing = await client.get("/api/v1/orgs/acme/invites", headers=alice)
    assert invite["token"] not in listing.text
    assert [i["id"] for i in listing.json()["items"]] == [invite["id"]]
    async with direct_db(client) as db:
        row = await db.get(Invite, invite["id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(invite["token"].encode()).hexdigest()
        events = (await db.exec(select(AuditEvent))).all()
        assert all(invite["token"] not in str(e.detail) for e in events)
    newcomer = await user(client, "new@example.com")
    accepted = await client.post(
        "/api/v1/invites/accept", headers=newcomer, json={"token": invite["token"]}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"org_id": org["id"], "org_slug": "acme", "role": "admin"}
    read = await client.get("/api/v1/orgs/acme", headers=newcomer)
    assert read.json()["role"] == "admin"
    assert_problem(
        await client.post(
            "/api/v1/invites/accept", headers=newcomer, json={"token": invite["token"]}
        ),
        410,
        "invite_used",
    )
    status = (
        await client.get("/api/v1/orgs/acme/invites", headers=alice, params={"status": "accepted"})
    ).json()["items"]
    assert [i["status"] for i in status] == ["accepted"]


async def test_another_email_cannot_use_an_invite(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    mallory = await user(client, "mallory@example.com")
    await make_org(client, alice, "acme")
    invite = await _invite(client, alice, "acme", "bob@example.com")
    assert_problem(
        await client.post(
            "/api/v1/invites/accept", headers=mallory, json={"token": invite["token"]}
        ),
        403,
        "invite_email_mismatch",
    )
    assert_problem(
        await client.post("/api/v1/invites/accept", headers=mallory, json={"token": "opv_made-up"}),
        400,
        "invalid_invite",
    )
    assert_problem(await client.get("/api/v1/orgs/acme", headers=mallory), 404)
    bob = await user(client, "bob@example.com")
    ok = await client.post("/api/v1/invites/accept", headers=bob, json={"token": invite["token"]})
    assert ok.status_code == 200, ok.text


async def test_revoked_expired_and_resent_invites(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    carol = await user(client, "carol@example.com")
    await make_org(client, alice, "acme")
    revoked = await _invite(client, alice, "acme", "bob@example.com")
    answer = await client.post(f"/api/v1/orgs/acme/invites/{revoked['id']}/revoke", headers=alice)
    assert answer.status_code == 200
    assert answer.json()["status"] == "revoked"
    assert "token" not in answer.json()
    assert_problem(
        await client.post("/api/v1/invites/accept", headers=bob, json={"token": revoked["token"]}),
        410,
        "invite_revoked",
    )
    assert_problem(
        await client.post(f"/api/v1/orgs/acme/invites/{revoked['id']}/resend", headers=alice),
        409,
        "invite_not_pending",
    )
    expired = await _invite(client, alice, "acme", "carol@example.com")
    async with direct_db(client) as db:
        await db.exec(
            update(Invite)
            .where(Invite.id == expired["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await db.commit()
    assert_problem(
        await client.post(
            "/api/v1/invites/accept", headers=carol, json={"token": expired["token"]}
        ),
        410,
        "invite_expired",
    )
    resent = await client.post(f"/api/v1/orgs/acme/invites/{expired['id']}/resend", headers=alice)
    assert resent.status_code == 200, resent.text
    fresh = resent.json()
    assert fresh["token"] != expired["token"]
    assert fresh["status"] == "pending"
    assert_problem(
        await client.post(
            "/api/v1/invites/accept", headers=carol, json={"token": expired["token"]}
        ),
        400,
        "invalid_invite",
    )
    ok = await client.post("/api/v1/invites/accept", headers=carol, json={"token": fresh["token"]})
    assert ok.status_code == 200
    assert ok.json()["role"] == "member"


async def test_who_may_invite_whom(client: AsyncTestClient[Any]) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    carol = await user(client, "carol@example.com")
    stranger = await user(client, "erin@example.com")
    await make_org(client, alice, "acme")
    await add_member(client, alice, "acme", "bob@example.com", "admin")
    await add_member(client, alice, "acme", "carol@example.com", "member")
    body = {"email": "new@example.com", "role": "member"}
    assert_problem(
        await client.post("/api/v1/orgs/acme/invites", headers=carol, json=body),
        403,
        "admin_required",
    )
    assert_problem(
        await client.get("/api/v1/orgs/acme/invites", headers=carol), 403, "admin_required"
    )
    assert_problem(
        await client.post("/api/v1/orgs/acme/invites", headers=stranger, json=body),
        404,
        "org_not_found",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs/acme/invites",
            headers=bob,
            json={"email": "new@example.com", "role": "owner"},
        ),
        403,
        "owner_required",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs/acme/invites", headers=bob, json={"email": "carol@example.com"}
        ),
        409,
        "already_member",
    )
    assert_problem(
        await client.post("/api/v1/orgs/acme/invites", headers=bob, json={"email": "not-an-email"}),
        400,
        "invalid_email",
    )
    first = await _invite(client, alice, "acme", "new@example.com", role="owner")
    assert_problem(
        await client.post("/api/v1/orgs/acme/invites", headers=bob, json=body),
        409,
        "invite_pending",
    )
    assert_problem(
        await client.post(f"/api/v1/orgs/acme/invites/{first['id']}/revoke", headers=bob),
        403,
        "owner_required",
    )
    await make_org(client, stranger, "other")
    assert_problem(
        await client.post(f"/api/v1/orgs/other/invites/{first['id']}/revoke", headers=stranger),
        404,
        "invite_not_found",
    )
