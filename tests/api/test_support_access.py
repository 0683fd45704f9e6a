"""Staff support access: a reason, an ``act`` claim, approvals, and what org admins see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
from litestar.testing import AsyncTestClient

from control_plane.db.models import AccessRequest, Org, utcnow
from tests.support.api import add_user, assert_problem, direct_db
from tests.support.mfa import mfa_login_body
from tests.support.tokens import exchange, login_body, make_org

REASON = "ticket 4711: login loop"


def _bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def _people(client: AsyncTestClient[Any], **org_fields: Any) -> dict[str, Any]:
    """Staff, an owner, an admin, a member and an outsider around org ``acme``."""
    staff = await add_user(client, "staff@orgplane.test", admin=True)
    ids = {
        name: await add_user(client, f"{name}@acme.test")
        for name in ("owner", "admin", "member", "outsider")
    }
    org_id = await make_org(
        client,
        "acme",
        members={ids["owner"]: "owner", ids["admin"]: "admin", ids["member"]: "member"},
        **org_fields,
    )
    people: dict[str, Any] = {"org_id": org_id, "staff_id": staff}
    # Support access needs a sign-in with a second factor.
    people["staff"] = await mfa_login_body(client, "staff@orgplane.test")
    for name in ids:
        people[name] = await login_body(client, f"{name}@acme.test")
    return people


async def test_staff_enter_with_a_reason_carry_act_and_are_audited(
    client: AsyncTestClient[Any],
) -> None:
    p = await _people(client)
    staff_token = p["staff"]["access_token"]
    missing = await exchange(client, staff_token, audience="org:acme")
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert missing.json()["orgplane_code"] == "reason_required"
    short = await exchange(client, staff_token, audience="org:acme", orgplane_reason="  hi   ")
    assert short.json()["orgplane_code"] == "reason_required"

    answer = await exchange(client, staff_token, audience="org:acme", orgplane_reason=REASON)
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == p["staff_id"]
    assert claims["act"] == {"sub": p["staff_id"], "email": "staff@orgplane.test"}
    assert claims["org_role"] == "admin"
    assert "org:owner" not in claims["scope"]

    events = await client.get(
        f"/api/v1/orgs/{p['org_id']}/access-events", headers=_bearer(p["admin"])
    )
    assert events.status_code == 200, events.text
    items = events.json()["items"]
    assert [(e["action"], e["actor_email"], e["reason"]) for e in items] == [
        ("staff.access", "staff@orgplane.test", REASON)
    ]
    assert items[0]["detail"]["jti"] == claims["jti"]
    assert_problem(
        await client.get(f"/api/v1/orgs/{p['org_id']}/access-events", headers=_bearer(p["member"])),
        403,
        "admin_required",
    )
    assert_problem(
        await client.get(
            f"/api/v1/orgs/{p['org_id']}/access-events", headers=_bearer(p["outsider"])
        ),
        404,
        "org_not_found",
    )


async def test_a_member_who_is_staff_enters_as_a_member(client: AsyncTestClient[Any]) -> None:
    staff = await add_user(client, "staff@orgplane.test", admin=True)
    await make_org(client, "acme", members={staff: "member"})
    body = await login_body(client, "staff@orgplane.test")
    answer = await exchange(client, body["access_token"], audience="org:acme")
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["org_role"] == "member"
    assert "act" not in claims


async def test_orgs_requiring_approval_let_staff_in_only_while_approved(
    client: AsyncTestClient[Any],
) -> None:
    p = await _people(client, require_access_approval=True)
    base = f"/api/v1/orgs/{p['org_id']}/access-requests"
    staff_token = p["staff"]["access_token"]
    refused = await exchange(client, staff_token, audience="org:acme", orgplane_reason=REASON)
    assert refused.json()["error"] == "invalid_target"
    assert refused.json()["orgplane_code"] == "approval_required"

    filed = await client.post(base, headers=_bearer(p["staff"]), json={"reason": REASON})
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    assert filed.json()["status"] == "pending"
    assert filed.json()["staff_email"] == "staff@orgplane.test"
    assert_problem(
        await client.post(base, headers=_bearer(p["staff"]), json={"reason": REASON}),
        409,
        "access_request_pending",
    )

    for who, status, code in (
        ("staff", 403, "owner_required"),
        ("admin", 403, "owner_required"),
        ("member", 403, "owner_required"),
        ("outsider", 404, "org_not_found"),
    ):
        denied = await client.post(f"{base}/{request_id}/approve", headers=_bearer(p[who]))
        assert_problem(denied, status, code)
    approved = await client.post(f"{base}/{request_id}/approve", headers=_bearer(p["owner"]))
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert_problem(
        await client.post(f"{base}/{request_id}/approve", headers=_bearer(p["owner"])),
        409,
        "access_request_decided",
    )

    entered = await exchange(client, staff_token, audience="org:acme", orgplane_reason=REASON)
    assert entered.status_code == 200, entered.text

    revoked = await client.post(f"{base}/{request_id}/reject", headers=_bearer(p["owner"]))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    again = await exchange(client, staff_token, audience="org:acme", orgplane_reason=REASON)
    assert again.json()["orgplane_code"] == "approval_required"

    listing = await client.get(base, headers=_bearer(p["admin"]))
    assert [r["status"] for r in listing.json()["items"]] == ["revoked"]
    events = await client.get(
        f"/api/v1/orgs/{p['org_id']}/access-events", headers=_bearer(p["owner"])
    )
    assert [e["action"] for e in events.json()["items"]] == [
        "access_request.reject",
        "staff.access",
        "access_request.approve",
        "access_request.create",
    ]


async def test_an_approval_ends_after_its_time(client: AsyncTestClient[Any]) -> None:
    p = await _people(client, require_access_approval=True)
    base = f"/api/v1/orgs/{p['org_id']}/access-requests"
    filed = await client.post(base, headers=_bearer(p["staff"]), json={"reason": REASON})
    request_id = filed.json()["id"]
    approved = await client.post(f"{base}/{request_id}/approve", headers=_bearer(p["owner"]))
    expires = approved.json()["expires_at"]
    assert expires is not None
    async with direct_db(client) as db:
        row = await db.get(AccessRequest, request_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        await db.commit()
    answer = await exchange(
        client, p["staff"]["access_token"], audience="org:acme", orgplane_reason=REASON
    )
    assert answer.json()["orgplane_code"] == "approval_required"
    listing = await client.get(base, headers=_bearer(p["owner"]))
    assert listing.json()["items"][0]["status"] == "expired"


async def test_access_request_bad_input_changes_nothing(client: AsyncTestClient[Any]) -> None:
    p = await _people(client, require_access_approval=True)
    base = f"/api/v1/orgs/{p['org_id']}/access-requests"
    staff = _bearer(p["staff"])
    assert_problem(await client.post(base, headers=staff, json={}), 400, "validation_error")
    assert_problem(
        await client.post(base, headers=staff, json={"reason": "short"}), 400, "invalid_reason"
    )
    assert_problem(
        await client.post(base, headers=staff, json={"reason": "x" * 501}), 400, "validation_error"
    )
    assert_problem(
        await client.post(base, headers=staff, json={"reason": REASON, "role": "x"}),
        400,
        "validation_error",
    )
    assert_problem(
        await client.post(base, headers=_bearer(p["member"]), json={"reason": REASON}),
        403,
        "platform_admin_required",
    )
    assert_problem(
        await client.post(base, headers=_bearer(p["outsider"]), json={"reason": REASON}),
        404,
        "org_not_found",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs/nope/access-requests", headers=staff, json={"reason": REASON}
        ),
        404,
        "org_not_found",
    )
    assert_problem(
        await client.post(f"{base}/nope/approve", headers=_bearer(p["owner"])),
        404,
        "access_request_not_found",
    )
    other = await make_org(client, "other", members={})
    filed = await client.post(
        f"/api/v1/orgs/{other}/access-requests", headers=staff, json={"reason": REASON}
    )
    assert filed.status_code == 201
    cross = await client.post(f"{base}/{filed.json()['id']}/approve", headers=_bearer(p["owner"]))
    assert_problem(cross, 404, "access_request_not_found")
    assert_problem(
        await client.get(base, headers=staff, params={"cursor": "%%%"}), 400, "invalid_cursor"
    )
    listing = await client.get(base, headers=_bearer(p["owner"]))
    assert listing.json()["items"] == []
    async with direct_db(client) as db:
        org = await db.get(Org, p["org_id"])
        assert org is not None
        assert org.require_access_approval


async def test_access_requests_page_newest_first(client: AsyncTestClient[Any]) -> None:
    p = await _people(client)
    base = f"/api/v1/orgs/{p['org_id']}/access-requests"
    ids = []
    for n in range(3):
        filed = await client.post(
            base, headers=_bearer(p["staff"]), json={"reason": f"{REASON} #{n}"}
        )
        ids.append(filed.json()["id"])
        await client.post(f"{base}/{ids[-1]}/reject", headers=_bearer(p["owner"]))
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(base, headers=_bearer(p["admin"]), params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
