"""The features catalogue: access rules in precedence order, applied at the next exchange."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import AuditEvent, Feature
from control_plane.features.rules import (
    RULE_COLUMNS,
    catalogue_column,
    catalogue_from,
    load_catalogue,
)
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.tokens import exchange, login_body, make_org


async def _features(client: AsyncTestClient[Any], access_token: str, org: str) -> list[str]:
    answer = await exchange(client, access_token, audience=f"org:{org}")
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    return list(claims["features"])


async def test_rules_apply_in_precedence_order_at_the_next_exchange(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice_id = await add_user(client, "alice@example.com")
    bob_id = await add_user(client, "bob@example.com")
    acme = await make_org(client, "acme", members={alice_id: "member", bob_id: "member"})
    await make_org(client, "acme-eng", parent_id=acme, members={bob_id: "member"})
    await make_org(client, "other", members={alice_id: "member"})
    alice = (await login_body(client, "alice@example.com"))["access_token"]
    bob = (await login_body(client, "bob@example.com"))["access_token"]
    assert await _features(client, alice, "acme") == ["chat", "files"]

    async def put(key: str, **rules: Any) -> None:
        answer = await client.put(f"/api/v1/features/{key}", headers=admin, json=rules)
        assert answer.status_code == 200, answer.text

    await put("beta", exclusive_user_ids=[alice_id])
    assert await _features(client, alice, "acme") == ["beta", "chat", "files"]
    assert "beta" not in await _features(client, bob, "acme")
    # Exclusive orgs reach their children; other orgs stay out.
    await put("beta", exclusive_org_ids=[acme])
    assert "beta" in await _features(client, bob, "acme-eng")
    assert "beta" not in await _features(client, alice, "other")
    # Plans decide below the exclusive rules; default below plans.
    await put("files", plans=["team"])
    assert await _features(client, alice, "other") == ["chat"]
    await put("sso", default=True)
    assert "sso" in await _features(client, alice, "other")
    # An org override beats plans, but "disabled" beats everything.
    await client.patch("/api/v1/orgs/other", headers=admin, json={"features": {"files": True}})
    assert "files" in await _features(client, alice, "other")
    await put("files", disabled=True)
    assert "files" not in await _features(client, alice, "other")
    deleted = await client.delete("/api/v1/features/files", headers=admin)
    assert deleted.status_code == 204
    assert "files" in await _features(client, bob, "acme")


async def test_everyone_reads_the_catalogue_only_platform_admins_see_rules_and_write(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await add_user(client, "carol@example.com")
    carol = await login(client, "carol@example.com")
    created = await client.put(
        "/api/v1/features/beta",
        headers=admin,
        json={"description": "Beta search", "exclusive_user_ids": ["a" * 32]},
    )
    assert created.json()["rules"]["exclusive_user_ids"] == ["a" * 32]
    listed = (await client.get("/api/v1/features", headers=carol)).json()
    assert [f["key"] for f in listed if f["in_catalogue"]] == ["beta"]
    assert {"chat", "files", "sso"} <= {f["key"] for f in listed}
    assert all(f["rules"] is None for f in listed)
    one = (await client.get("/api/v1/features/beta", headers=carol)).json()
    assert one["description"] == "Beta search"
    assert one["rules"] is None
    assert_problem(
        await client.get("/api/v1/features/nope", headers=carol), 404, "feature_not_found"
    )
    assert_problem(await client.get("/api/v1/features"), 401)
    assert_problem(
        await client.put("/api/v1/features/beta", headers=carol, json={}),
        403,
        "platform_admin_required",
    )
    assert_problem(
        await client.delete("/api/v1/features/beta", headers=carol), 403, "platform_admin_required"
    )
    bad = [
        ("Bad-Key", {}, None),
        ("beta", {"plans": ["gold"]}, "unknown_plan"),
        ("beta", {"exclusive_org_ids": ["not-an-id"]}, None),
        ("beta", {"surprise": 1}, None),
    ]
    for key, body, code in bad:
        assert_problem(
            await client.put(f"/api/v1/features/{key}", headers=admin, json=body), 400, code
        )
    assert_problem(await client.delete("/api/v1/features/nope", headers=admin), 404)
    async with direct_db(client) as db:
        actions = (
            await db.exec(select(AuditEvent.action).where(AuditEvent.target_type == "feature"))
        ).all()
    assert actions == ["feature.put"]


async def test_the_catalogue_column_reads_what_a_catalogue_query_reads(
    client: AsyncTestClient[Any],
) -> None:
    """The exchange's catalogue, one JSON column of its query, equals the catalogue's query."""
    entries = [
        Feature(key="plain"),
        Feature(key="off", disabled=True, default=True, plans=["team", "enterprise"]),
        Feature(key="chosen", exclusive_user_ids=["a" * 32, "b" * 32], exclusive_org_ids=["c"]),
        Feature(key="it's", description="a quote in the key", default=True),
    ]
    async with direct_db(client) as db:
        assert catalogue_from((await db.exec(select(catalogue_column()))).one()) == {}
        db.add_all(entries)
        await db.commit()
        expected = await load_catalogue(db)
        read = catalogue_from((await db.exec(select(catalogue_column()))).one())

    def rules(feature: Feature) -> tuple[object, ...]:
        return tuple(getattr(feature, name) for name in RULE_COLUMNS)

    assert sorted(read) == ["chosen", "it's", "off", "plain"]
    assert {k: rules(v) for k, v in read.items()} == {k: rules(v) for k, v in expected.items()}
