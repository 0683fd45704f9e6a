"""An inherited role cannot be turned into a direct membership that outlives the parent's."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import add_user, assert_problem, login
from tests.support.tokens import make_org


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
