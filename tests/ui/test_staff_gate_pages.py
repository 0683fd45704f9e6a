"""The staff approval gate in the UI: owners switch it with a form; staff behind it see the
org's registry and instance, never its members or domains."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, Org
from tests.support.api import add_user, direct_db
from tests.support.tokens import make_org
from tests.ui.forms import submit, ui_login

Client = AsyncTestClient[Any]


async def test_owners_switch_the_gate_and_gated_staff_see_no_members(client: Client) -> None:
    """Failed on the old code: the members page had no switch (the form post answered 404),
    and staff saw the member list of an org requiring approval."""
    await add_user(client, "staff@orgplane.test", admin=True)
    owner = await add_user(client, "owner@acme.test")
    member = await add_user(client, "hidden-member@acme.test")
    org_id = await make_org(client, "acme", members={owner: "owner", member: "member"})

    await ui_login(client, "owner@acme.test")
    page = "/ui/orgs/acme/members"
    switched = await submit(client, page, "/ui/orgs/acme/access-approval", required="on")
    assert switched.status_code == 303, switched.text
    assert 'id="approval-state">yes<' in (await client.get(page)).text
    bad = await submit(client, page, "/ui/orgs/acme/access-approval", required="maybe")
    assert bad.status_code == 400
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        assert org.require_access_approval
        actions = (
            await db.exec(
                select(AuditEvent.action).where(col(AuditEvent.action) == "org.access_approval")
            )
        ).all()
    assert actions == ["org.access_approval"]

    await client.post("/ui/logout", follow_redirects=False)
    await ui_login(client, "staff@orgplane.test")
    detail = await client.get("/ui/orgs/acme")
    assert detail.status_code == 200
    assert "requires an approved support-access request" in detail.text
    assert "hidden-member@acme.test" not in detail.text
    members = await client.get(page)
    assert members.status_code == 200
    assert "Approval required" in members.text
    assert "hidden-member@acme.test" not in members.text
    refused = await submit(client, page, "/ui/orgs/acme/access-approval", required="off")
    assert refused.status_code == 403
