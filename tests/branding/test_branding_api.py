"""The branding API: own values, inheritance with sources, logo upload, bad input, audit."""

from __future__ import annotations

import io
from typing import Any

from litestar.testing import AsyncTestClient
from PIL import Image
from sqlmodel import col, select

from control_plane.db.branding_models import OrgBranding, OrgLogo
from control_plane.db.models import AuditEvent
from tests.support.api import assert_problem, direct_db
from tests.support.images import image_bytes
from tests.support.orgs import add_member, make_org, user


async def branding_rows(client: AsyncTestClient[Any]) -> list[tuple[Any, ...]]:
    async with direct_db(client) as db:
        rows = (await db.exec(select(OrgBranding).order_by(col(OrgBranding.org_id)))).all()
        logos = (await db.exec(select(OrgLogo.org_id, OrgLogo.sha256))).all()
        return [
            (r.org_id, r.display_name, r.primary_color, r.contact_email, r.meta, r.logo_sha256)
            for r in rows
        ] + [tuple(logo) for logo in logos]


async def test_children_inherit_branding_value_by_value_and_see_where_it_came_from(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice = await user(client, "alice@example.com")
    corp = await make_org(client, admin, "corp", plan="team", owner_email="alice@example.com")
    child = await make_org(client, alice, "corp-eng", parent_id="corp")
    fresh = (await client.get("/api/v1/orgs/corp-eng/branding", headers=alice)).json()
    assert fresh["resolved"] == {
        "display_name": "Corp-Eng",
        "primary_color": None,
        "text_color": None,
        "contact_email": None,
        "logo_url": None,
    }
    assert fresh["sources"]["display_name"] == {"kind": "default", "org_id": None, "org_slug": None}

    put = await client.put(
        "/api/v1/orgs/corp/branding",
        headers=alice,
        json={
            "display_name": "Corp Inc.",
            "primary_color": "#FFCC00",
            "contact_email": "Help@Corp.example",
            "metadata": {"region": "eu", "seats": 40, "vip": True, "ratio": 0.5},
        },
    )
    assert put.status_code == 200, put.text
    assert put.json()["own"]["primary_color"] == "#ffcc00"
    assert put.json()["resolved"]["text_color"] == "#111111"  # dark text on yellow
    logo = await client.put("/api/v1/orgs/corp/branding/logo", headers=alice, content=image_bytes())
    assert logo.status_code == 200, logo.text
    logo_url = logo.json()["resolved"]["logo_url"]

    seen = (await client.get("/api/v1/orgs/corp-eng/branding", headers=alice)).json()
    assert seen["resolved"] == {
        "display_name": "Corp Inc.",
        "primary_color": "#ffcc00",
        "text_color": "#111111",
        "contact_email": "help@corp.example",
        "logo_url": logo_url,
    }
    assert seen["own"]["metadata"] == {}  # metadata describes one org: not inherited
    inherited = {"kind": "inherited", "org_id": corp["id"], "org_slug": "corp"}
    assert all(source == inherited for source in seen["sources"].values())

    # The child sets its own colour: only that value (and its text colour) changes source.
    await client.put("/api/v1/orgs/corp-eng/branding", headers=alice,
                     json={"primary_color": "#003366"})  # fmt: skip
    own = (await client.get("/api/v1/orgs/corp-eng/branding", headers=alice)).json()
    assert own["resolved"]["primary_color"] == "#003366"
    assert own["resolved"]["text_color"] == "#ffffff"
    assert own["sources"]["primary_color"]["kind"] == "own"
    assert own["sources"]["text_color"]["kind"] == "own"
    assert own["sources"]["display_name"] == inherited
    assert own["resolved"]["display_name"] == "Corp Inc."
    orgs = (await client.get("/api/v1/orgs/corp-eng", headers=alice)).json()
    assert orgs["config_version"] > child["config_version"]


async def test_a_branding_change_bumps_config_of_the_org_and_its_descendants_and_is_audited(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    corp = await make_org(client, admin, "corp", plan="team")
    child = await make_org(client, admin, "corp-eng", parent_id="corp")
    await client.put("/api/v1/orgs/corp/branding", headers=admin, json={"display_name": "Corp"})
    after = {o: (await client.get(f"/api/v1/orgs/{o}", headers=admin)).json()["config_version"]
             for o in ("corp", "corp-eng")}  # fmt: skip
    assert after == {"corp": corp["config_version"] + 1, "corp-eng": child["config_version"] + 1}
    # The same values again change nothing, and bump nothing.
    await client.put("/api/v1/orgs/corp/branding", headers=admin, json={"display_name": "Corp"})
    again = (await client.get("/api/v1/orgs/corp", headers=admin)).json()["config_version"]
    assert again == after["corp"]
    async with direct_db(client) as db:
        events = (
            await db.exec(select(AuditEvent).where(col(AuditEvent.action) == "org.branding.update"))
        ).all()
    assert [(e.org_id, e.detail["changed"]) for e in events] == [(corp["id"], ["display_name"])]


async def test_members_read_branding_but_only_admins_change_it(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    bob = await user(client, "bob@example.com")
    outsider = await user(client, "eve@example.com")
    await make_org(client, admin, "corp")
    await add_member(client, admin, "corp", "bob@example.com", "member")
    assert (await client.get("/api/v1/orgs/corp/branding", headers=bob)).status_code == 200
    before = await branding_rows(client)
    refused = await client.put("/api/v1/orgs/corp/branding", headers=bob,
                               json={"display_name": "Mine"})  # fmt: skip
    assert_problem(refused, 403, "admin_required")
    assert_problem(await client.put("/api/v1/orgs/corp/branding/logo", headers=bob,
                                    content=image_bytes()), 403, "admin_required")  # fmt: skip
    hidden = await client.get("/api/v1/orgs/corp/branding", headers=outsider)
    assert_problem(hidden, 404, "org_not_found")
    assert await branding_rows(client) == before


async def test_bad_branding_input_is_a_problem_and_changes_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, admin, "corp")
    await client.put("/api/v1/orgs/corp/branding", headers=admin,
                     json={"display_name": "Corp", "primary_color": "#112233"})  # fmt: skip
    before = await branding_rows(client)
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"primary_color": "red"}, 400, "invalid_color"),
        ({"primary_color": "#12345g"}, 400, "invalid_color"),
        ({"primary_color": "#123"}, 400, "invalid_color"),
        ({"display_name": "   "}, 400, "invalid_display_name"),
        ({"display_name": "a\u202eb"}, 400, "invalid_display_name"),
        ({"contact_email": "not-an-email"}, 400, "invalid_email"),
        ({"metadata": {f"k{i}": i for i in range(33)}}, 400, None),
        ({"metadata": {"k": {"nested": 1}}}, 400, None),
        ({"metadata": {"k": [1, 2]}}, 400, None),
        ({"metadata": {"bad key": 1}}, 400, None),
        ({"metadata": {f"k{i}": "x" * 2000 for i in range(5)}}, 400, "metadata_too_large"),
        ({"unknown": 1}, 400, None),
    ]
    for body, status, code in cases:
        answer = await client.put("/api/v1/orgs/corp/branding", headers=admin, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        if code:
            assert answer.json()["code"] == code, (body, answer.text)
    infinite = b'{"metadata": {"k": 1e999}}'
    raw = await client.put("/api/v1/orgs/corp/branding", content=infinite,
                           headers={**admin, "content-type": "application/json"})  # fmt: skip
    assert_problem(raw, 400)  # refused before it reaches the branding rules
    assert await branding_rows(client) == before


async def test_logos_are_served_with_their_type_nosniff_and_a_csp_that_stops_script(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, admin, "corp")
    webp = image_bytes((4, 4), (0, 0, 255), fmt="WEBP")
    for data, kind in ((image_bytes(), "image/png"), (webp, "image/webp")):
        # The declared type is ignored: the content decides.
        up = await client.put("/api/v1/orgs/corp/branding/logo", headers={
            **admin, "content-type": "text/html"}, content=data)  # fmt: skip
        assert up.status_code == 200, up.text
        url = up.json()["own"]["logo_url"]
        served = await client.get(url)  # public: no credentials
        assert served.status_code == 200
        assert served.headers["content-type"] == kind
        assert served.headers["x-content-type-options"] == "nosniff"
        csp = served.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "sandbox" in csp
        assert "script-src" not in csp
        assert Image.open(io.BytesIO(served.content)).format in ("PNG", "WEBP")
    # Removing the logo: its URL answers 404 and the org has none.
    assert (
        await client.delete("/api/v1/orgs/corp/branding/logo", headers=admin)
    ).status_code == 204
    assert_problem(await client.get(url), 404, "logo_not_found")
    for odd in ("x", "A" * 64, "a%00" * 32, "..%2F" * 20):
        assert_problem(await client.get(f"/api/v1/branding/logos/{odd}"), 404)
    assert (await client.get("/api/v1/orgs/corp/branding", headers=admin)).json()["own"][
        "logo_url"
    ] is None
