"""The features explain view: per feature, the value for one org and one user and the rule
that decided it; the same values the token exchange puts in an org token."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import func, select

from control_plane.db.models import Feature
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.tokens import exchange, login_body, make_org

EXPLAIN = "/api/v1/features/explain"


async def _token_features(client: AsyncTestClient[Any], email: str, org: str) -> set[str]:
    access = (await login_body(client, email))["access_token"]
    answer = await exchange(client, access, audience=f"org:{org}")
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    return set(claims["features"])


async def _explain(client: AsyncTestClient[Any], admin: dict[str, str], **params: str) -> Any:
    answer = await client.get(EXPLAIN, headers=admin, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _by_key(body: Any) -> dict[str, tuple[bool, str, str]]:
    return {f["key"]: (f["enabled"], f["rule"], f["reason"]) for f in body["features"]}


async def test_explain_names_the_rule_that_decided_each_feature(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    alice_id = await add_user(client, "alice@example.com")
    bob_id = await add_user(client, "bob@example.com")
    acme = await make_org(client, "acme", members={alice_id: "member"}, features={"sso": True})
    await make_org(client, "acme-eng", parent_id=acme, members={bob_id: "member"})
    rules = {
        "beta": {"exclusive_user_ids": [alice_id]},
        "files": {"plans": ["team"]},
        "gone": {"disabled": True, "default": True},
        "labs": {"exclusive_org_ids": [acme]},
        "later": {"default": True},
    }
    for key, body in rules.items():
        put = await client.put(f"/api/v1/features/{key}", headers=admin, json=body)
        assert put.status_code == 200, put.text

    bob = await _explain(client, admin, org="acme-eng", user=bob_id)
    assert (bob["org_slug"], bob["user_email"], bob["role"]) == (
        "acme-eng",
        "bob@example.com",
        "member",
    )
    assert _by_key(bob) == {
        "api_access": (False, "default", "no entry, no plan: off"),
        "audit_export": (False, "default", "no entry, no plan: off"),
        "beta": (False, "exclusive_others", "exclusive, not listed"),
        "chat": (True, "plan", "the free plan includes it"),
        "custom_domains": (False, "default", "no entry, no plan: off"),
        "files": (False, "entry_plans", "entry plans team; this org's plan is free"),
        "gone": (False, "disabled", "disabled"),
        "labs": (True, "exclusive_org", "exclusive to the org acme"),
        "later": (True, "default", "the entry's default"),
        "sso": (True, "override", "override set on acme"),
    }
    # The explanation agrees with what the token exchange grants, user by user.
    enabled = {key for key, (on, _, _) in _by_key(bob).items() if on}
    assert enabled == await _token_features(client, "bob@example.com", "acme-eng")
    alice = await _explain(client, admin, org=acme, user="Alice@Example.com")
    assert _by_key(alice)["beta"] == (True, "exclusive_user", "exclusive users")
    assert _by_key(alice)["sso"][2] == "override set on this org"
    enabled = {key for key, (on, _, _) in _by_key(alice).items() if on}
    assert enabled == await _token_features(client, "alice@example.com", "acme")
    # Without a user: what the org's own gates see.
    org_level = await _explain(client, admin, org="acme")
    assert (org_level["user_id"], org_level["role"]) == (None, None)
    assert _by_key(org_level)["beta"][:2] == (False, "exclusive_others")


async def test_explain_is_for_platform_admins_and_refuses_bad_input(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    carol_id = await add_user(client, "carol@example.com")
    await make_org(client, "acme", members={carol_id: "owner"})
    carol = await login(client, "carol@example.com")
    assert_problem(
        await client.get(EXPLAIN, headers=carol, params={"org": "acme"}),
        403,
        "platform_admin_required",
    )
    assert_problem(await client.get(EXPLAIN, params={"org": "acme"}), 401)
    assert_problem(await client.get(EXPLAIN), 401)  # who asks comes before what is asked
    assert_problem(await client.get(EXPLAIN, headers=admin), 400, "org_required")
    assert_problem(await client.get(EXPLAIN, headers=admin, params={"org": "x" * 201}), 400)
    assert_problem(await client.get(EXPLAIN, headers=admin, params={"org": ""}), 400)
    for org in ("nope", "a\x00b", "f" * 32):
        assert_problem(
            await client.get(EXPLAIN, headers=admin, params={"org": org}), 404, "org_not_found"
        )
    for user in ("nobody@example.com", "f" * 32, "\x00", "a\x00@example.com"):
        assert_problem(
            await client.get(EXPLAIN, headers=admin, params={"org": "acme", "user": user}),
            404,
            "user_not_found",
        )
    # "explain" is a path, so no catalogue entry can take the name.
    refused = await client.put("/api/v1/features/explain", headers=admin, json={})
    assert_problem(refused, 405, "method_not_allowed")
    async with direct_db(client) as db:
        assert (await db.exec(select(func.count()).select_from(Feature))).one() == 0


async def test_explain_is_in_the_openapi_document(client: AsyncTestClient[Any]) -> None:
    document = (await client.get("/api/schema/openapi.json")).json()
    operation = document["paths"][EXPLAIN]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"org", "user"}
