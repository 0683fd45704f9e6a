"""An inherited role cannot be turned into a direct membership that outlives the parent's."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.tokens import exchange, login_body, make_org


async def test_a_parent_admin_cannot_make_itself_a_member_of_a_child(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: the parent's admin added itself to the child as a direct admin
    (201), a membership that would have outlived its removal from the parent."""
    owner = await add_user(client, "owner@acme.test")
    pam = await add_user(client, "pam@acme.test")
    parent = await make_org(client, "acme", members={owner: "owner", pam: "admin"})
    child = await make_org(client, "acme-kid", members={owner: "owner"}, parent_id=parent)
    as_pam, as_owner = await login(client, "pam@acme.test"), await login(client, "owner@acme.test")
    kid = f"/api/v1/orgs/{child}"
    assert (await client.get(f"{kid}/members", headers=as_pam)).status_code == 200  # inherited

    for role in ("admin", "member"):
        added = await client.post(
            f"{kid}/members", headers=as_pam, json={"user_id": pam, "role": role}
        )
        assert_problem(added, 403, "self_grant")
    invited = await client.post(
        f"{kid}/invites", headers=as_pam, json={"email": "PAM@acme.test", "role": "member"}
    )
    assert_problem(invited, 403, "self_grant")

    removed = await client.delete(f"/api/v1/orgs/{parent}/members/{pam}", headers=as_owner)
    assert removed.status_code == 204
    assert_problem(await client.get(kid, headers=as_pam), 404, "org_not_found")
    # Others are added as before.
    await add_user(client, "carl@acme.test")
    ok = await client.post(
        f"{kid}/members", headers=as_owner, json={"email": "carl@acme.test", "role": "member"}
    )
    assert ok.status_code == 201, ok.text


async def test_an_org_a_parent_admin_creates_under_it_ends_with_the_parent_membership(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: a parent's admin created a child (and a grandchild under it)
    and became their direct owner, which survived removal from the parent: after it, the child
    still answered 200 and a token exchange for it was granted. Now the owner membership is
    derived from the parent's admin membership and ends with it, down the tree; the token
    exchange is refused and the member list no longer has the user."""
    owner = await add_user(client, "owner@acme.test")
    pam = await add_user(client, "pam@acme.test")
    parent = await make_org(client, "acme", members={owner: "owner", pam: "admin"})
    as_pam, as_owner = await login(client, "pam@acme.test"), await login(client, "owner@acme.test")
    created = await client.post(
        "/api/v1/orgs",
        headers=as_pam,
        json={"slug": "acme-kid", "name": "Kid", "parent_id": parent},
    )
    assert created.status_code in (201, 202), created.text
    child = created.json()["id"]
    grand = await client.post(
        "/api/v1/orgs", headers=as_pam, json={"slug": "acme-gk", "name": "Gk", "parent_id": child}
    )
    assert grand.status_code in (201, 202), grand.text
    grandchild = grand.json()["id"]
    members = (await client.get(f"/api/v1/orgs/{child}/members", headers=as_owner)).json()
    assert [(m["user_id"], m["role"]) for m in members["items"]] == [(pam, "owner")]
    pam_token = (await login_body(client, "pam@acme.test"))["access_token"]
    assert (await exchange(client, pam_token, audience=f"org:{grandchild}")).status_code == 200

    removed = await client.delete(f"/api/v1/orgs/{parent}/members/{pam}", headers=as_owner)
    assert removed.status_code == 204

    for org_id in (child, grandchild):
        assert_problem(await client.get(f"/api/v1/orgs/{org_id}", headers=as_pam), 404)
        refused = await exchange(client, pam_token, audience=f"org:{org_id}")
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_target"
        listed = (await client.get(f"/api/v1/orgs/{org_id}/members", headers=as_owner)).json()
        assert pam not in [m["user_id"] for m in listed["items"]]
    async with direct_db(client) as db:
        query = select(AuditEvent).where(
            col(AuditEvent.action) == "member.remove", col(AuditEvent.target_id) == pam
        )
        events = {(e.org_id, e.detail.get("derived_from")) for e in (await db.exec(query)).all()}
    assert events == {(parent, None), (child, parent), (grandchild, child)}
    # The parent's remaining admins still manage the child.
    assert (await client.get(f"/api/v1/orgs/{child}/members", headers=as_owner)).status_code == 200


async def test_lowering_a_parent_role_below_admin_ends_the_derived_ownership(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code (as above): demoted to member of the parent, the creator kept
    owning the child it had made as the parent's admin."""
    owner = await add_user(client, "owner@acme.test")
    pam = await add_user(client, "pam@acme.test")
    parent = await make_org(client, "acme", members={owner: "owner", pam: "admin"})
    as_pam, as_owner = await login(client, "pam@acme.test"), await login(client, "owner@acme.test")
    created = await client.post(
        "/api/v1/orgs",
        headers=as_pam,
        json={"slug": "acme-kid", "name": "Kid", "parent_id": parent},
    )
    child = created.json()["id"]
    lowered = await client.patch(
        f"/api/v1/orgs/{parent}/members/{pam}", headers=as_owner, json={"role": "member"}
    )
    assert lowered.status_code == 200, lowered.text
    assert_problem(await client.get(f"/api/v1/orgs/{child}", headers=as_pam), 404)
