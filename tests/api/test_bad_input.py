"""Bad input on every endpoint with a body (identity's too), bad query parameters, tricky
names, and ids of orgs the caller does not belong to. Every answer is problem+json and the
database is left exactly as it was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support.api import PASSWORD, add_user, assert_problem
from tests.support.orgs import add_member, make_org, me_id, org_rows, row_counts, user

WRONG_TYPE = {str: 12345, bool: "yes", dict: ["not", "an", "object"], int: "ten"}


@dataclass
class World:
    admin: dict[str, str]
    alice: dict[str, str]
    bob: dict[str, str]
    carol_id: str
    bob_id: str
    bobco: dict[str, Any]
    bob_invite: str

    def endpoints(self) -> list[tuple[str, str, dict[str, str], dict[str, Any], list[str]]]:
        """(method, path, headers, a valid body, its required fields) of every JSON body."""
        return [
            (
                "POST",
                "/api/v1/auth/login",
                {},
                {"email": "alice@example.com", "password": PASSWORD},
                ["email", "password"],
            ),
            (
                "POST",
                "/api/v1/auth/signup",
                {},
                {"email": "new@example.com", "password": PASSWORD, "name": "N"},
                ["email", "password"],
            ),
            ("POST", "/api/v1/auth/logout", self.alice, {"refresh_token": "opr_x"}, []),
            (
                "POST",
                "/api/v1/me/password",
                self.alice,
                {"current_password": PASSWORD, "new_password": "another long one"},
                ["current_password", "new_password"],
            ),
            (
                "POST",
                "/api/v1/users",
                self.admin,
                {
                    "email": "new@example.com",
                    "password": PASSWORD,
                    "name": "N",
                    "is_platform_admin": False,
                },
                ["email", "password"],
            ),
            (
                "PATCH",
                f"/api/v1/users/{self.carol_id}",
                self.admin,
                {"name": "C", "disabled": False, "is_platform_admin": False},
                [],
            ),
            (
                "POST",
                "/api/v1/orgs",
                self.alice,
                {
                    "name": "New",
                    "slug": "new-co",
                    "plan": "free",
                    "parent_id": "acme",
                    "features": {},
                    "limits": {},
                },
                ["name", "slug"],
            ),
            ("PATCH", "/api/v1/orgs/acme", self.alice, {"name": "Acme"}, []),
            (
                "POST",
                "/api/v1/orgs/acme/members",
                self.alice,
                {"email": "dave@example.com", "role": "member"},
                [],
            ),
            (
                "PATCH",
                f"/api/v1/orgs/acme/members/{self.carol_id}",
                self.alice,
                {"role": "member"},
                ["role"],
            ),
            (
                "POST",
                "/api/v1/orgs/acme/invites",
                self.alice,
                {"email": "new@example.com", "role": "member"},
                ["email"],
            ),
            ("POST", "/api/v1/invites/accept", self.alice, {"token": "opv_x"}, ["token"]),
        ]


@pytest.fixture
async def world(client: AsyncTestClient[Any], admin: dict[str, str]) -> World:
    """alice owns acme (with child acme-eng and member carol); bob owns bobco."""
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    carol_id = await add_user(client, "carol@example.com")
    await add_user(client, "dave@example.com")
    await make_org(client, alice, "acme")
    await make_org(client, alice, "acme-eng", parent_id="acme")
    await add_member(client, alice, "acme", "carol@example.com", "member")
    bobco = await make_org(client, bob, "bobco")
    invite = await client.post(
        "/api/v1/orgs/bobco/invites", headers=bob, json={"email": "x@example.com"}
    )
    return World(
        admin=admin,
        alice=alice,
        bob=bob,
        carol_id=carol_id,
        bob_id=await me_id(client, bob),
        bobco=bobco,
        bob_invite=invite.json()["id"],
    )


async def _snapshot(client: AsyncTestClient[Any]) -> tuple[Any, ...]:
    return await row_counts(client), await org_rows(client)


async def test_malformed_and_non_object_json_is_refused_everywhere(
    client: AsyncTestClient[Any], world: World
) -> None:
    before = await _snapshot(client)
    for method, path, headers, _, _ in world.endpoints():
        for raw in (b'{"name": ', b"{'single': 'quotes'}", b"\xff\xfe\x00", b"{} trailing"):
            answer = await client.request(
                method, path, content=raw, headers={**headers, "content-type": "application/json"}
            )
            assert_problem(answer, 400, "malformed_body")
        for raw in (b"[]", b'"text"', b"42", b"null"):
            answer = await client.request(
                method, path, content=raw, headers={**headers, "content-type": "application/json"}
            )
            assert_problem(answer, 400, "validation_error")
    assert await _snapshot(client) == before


async def test_wrong_types_missing_and_unknown_fields_are_named(
    client: AsyncTestClient[Any], world: World
) -> None:
    before = await _snapshot(client)
    for method, path, headers, valid, required in world.endpoints():
        for field, value in valid.items():
            body = {**valid, field: WRONG_TYPE[type(value)]}
            answer = await client.request(method, path, headers=headers, json=body)
            problem = assert_problem(answer, 400, "validation_error")
            assert field in [e["field"] for e in problem["errors"]], (path, field, problem)
            assert field in problem["detail"]
        for field in required:
            body = {k: v for k, v in valid.items() if k != field}
            problem = assert_problem(
                await client.request(method, path, headers=headers, json=body),
                400,
                "validation_error",
            )
            assert [e["field"] for e in problem["errors"]] == [field], (path, problem)
        unknown = await client.request(
            method, path, headers=headers, json={**valid, "is_superuser": True}
        )
        problem = assert_problem(unknown, 400, "validation_error")
        assert [e["field"] for e in problem["errors"]] == ["is_superuser"]
    assert await _snapshot(client) == before


async def test_oversized_bodies_answer_413(client: AsyncTestClient[Any], world: World) -> None:
    limit = client.app.state.runtime.settings.server.max_body_bytes
    before = await _snapshot(client)
    for method, path, headers, valid, _ in world.endpoints():
        field = next(k for k, v in valid.items() if isinstance(v, str))
        body = {**valid, field: "x" * (limit + 1)}
        answer = await client.request(method, path, headers=headers, json=body)
        assert_problem(answer, 413, "body_too_large")
    assert await _snapshot(client) == before


async def test_bad_query_parameters_are_problems(
    client: AsyncTestClient[Any], world: World
) -> None:
    before = await _snapshot(client)
    lists = [
        "/api/v1/orgs",
        "/api/v1/orgs/acme/members",
        "/api/v1/orgs/acme/invites",
        "/api/v1/audit",
        "/api/v1/users",
    ]
    bad = [
        ({"limit": "ten"}, "validation_error"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "100000"}, "invalid_limit"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
    ]
    for path in lists:
        headers = world.admin if path.endswith("users") else world.alice
        for params, code in bad:
            assert_problem(await client.get(path, headers=headers, params=params), 400, code)
    assert_problem(
        await client.get(
            "/api/v1/orgs/acme/invites", headers=world.alice, params={"status": "lost"}
        ),
        400,
        "validation_error",
    )
    assert_problem(
        await client.get("/api/v1/orgs", headers=world.alice, params={"q": "x" * 500}),
        400,
        "validation_error",
    )
    sneaky = await client.get("/api/v1/orgs", headers=world.alice, params={"q": "' OR '1'='1' --"})
    assert sneaky.status_code == 200
    assert sneaky.json()["items"] == []
    assert await _snapshot(client) == before


async def test_tricky_names_are_stored_and_returned_verbatim(
    client: AsyncTestClient[Any], world: World
) -> None:
    names = [
        "Robert'); DROP TABLE org;--",
        "<script>alert('x')</script>",
        '" onmouseover="alert(1)',
        "Za\u0327\u0301lgo \U0001f3e2 名前 مرحبا",
        "\u202eevil\u202c right-to-left",
        "zero\u200bwidth %s %n {0} ${jndi:ldap://x}",
    ]
    for i, name in enumerate(names):
        created = await make_org(client, world.alice, f"tricky-{i}", name=name)
        assert created["name"] == name
        read = await client.get(f"/api/v1/orgs/tricky-{i}", headers=world.alice)
        assert read.headers["content-type"].startswith("application/json")
        assert read.json()["name"] == name
    patched = await client.patch(
        "/api/v1/orgs/tricky-0", headers=world.alice, json={"name": names[1]}
    )
    assert patched.json()["name"] == names[1]
    found = (
        await client.get("/api/v1/orgs", headers=world.alice, params={"q": "DROP TABLE"})
    ).json()["items"]
    assert [o["slug"] for o in found] == []  # tricky-0 was renamed
    labels = (
        await client.get("/api/v1/orgs/lookup", headers=world.alice, params={"q": "<script>"})
    ).json()
    assert {item["label"] for item in labels} == {
        f"{names[1]} (tricky-0)",
        f"{names[1]} (tricky-1)",
    }
    before = await _snapshot(client)
    for bad_name in ("bell\x07", "nul\x00", "   "):
        answer = await client.post(
            "/api/v1/orgs", headers=world.alice, json={"name": bad_name, "slug": "bad-name"}
        )
        assert_problem(answer, 400, "invalid_name")
    for bad_slug in ("drop';--", "<b>x</b>", "ünï"):
        answer = await client.post(
            "/api/v1/orgs", headers=world.alice, json={"name": "X", "slug": bad_slug}
        )
        assert_problem(answer, 400, "invalid_slug")
    invite = await client.post(
        "/api/v1/orgs/acme/invites",
        headers=world.alice,
        json={"email": "x'; DROP TABLE invite;--@example.com"},
    )
    assert_problem(invite, 400, "invalid_email")
    assert await _snapshot(client) == before


async def test_ids_of_other_orgs_answer_404_in_paths_queries_and_bodies(
    client: AsyncTestClient[Any], world: World
) -> None:
    before = await _snapshot(client)
    alice = world.alice
    for ref in (world.bobco["id"], "bobco"):
        org = f"/api/v1/orgs/{ref}"
        requests: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", org, None),
            ("PATCH", org, {"name": "Mine"}),
            ("DELETE", f"{org}?confirm=bobco", None),
            *[
                ("POST", f"{org}/{action}", None)
                for action in ("suspend", "resume", "lock", "unlock", "deletion/cancel")
            ],
            ("GET", f"{org}/members", None),
            ("POST", f"{org}/members", {"email": "alice@example.com", "role": "member"}),
            ("PATCH", f"{org}/members/{world.bob_id}", {"role": "member"}),
            ("DELETE", f"{org}/members/{world.bob_id}", None),
            ("GET", f"{org}/invites", None),
            ("POST", f"{org}/invites", {"email": "alice@example.com"}),
            ("POST", f"{org}/invites/{world.bob_invite}/revoke", None),
            ("POST", f"{org}/invites/{world.bob_invite}/resend", None),
            ("GET", f"/api/v1/orgs?parent_id={ref}", None),
            ("GET", f"/api/v1/audit?org_id={ref}", None),
            ("POST", "/api/v1/orgs", {"name": "Sneaky", "slug": "sneaky", "parent_id": ref}),
            ("PATCH", "/api/v1/orgs/acme-eng", {"parent_id": ref}),
        ]
        for method, path, body in requests:
            answer = await client.request(method, path, headers=alice, json=body)
            assert_problem(answer, 404, "org_not_found")
    assert_problem(
        await client.post(f"/api/v1/orgs/acme/invites/{world.bob_invite}/revoke", headers=alice),
        404,
        "invite_not_found",
    )
    assert_problem(
        await client.post("/api/v1/orgs/acme/members", headers=alice, json={"user_id": "f" * 32}),
        404,
        "user_not_found",
    )
    labels = await client.get(
        "/api/v1/orgs/lookup", headers=alice, params={"ids": world.bobco["id"]}
    )
    assert labels.json() == []
    assert await _snapshot(client) == before


async def test_nul_characters_are_refused_without_a_server_error(
    client: AsyncTestClient[Any], world: World
) -> None:
    before = await _snapshot(client)
    alice = world.alice
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/v1/orgs/ac%00me", None),
        ("PATCH", "/api/v1/orgs/ac%00me", {"name": "x"}),
        ("GET", "/api/v1/orgs?q=ac%00me", None),
        ("GET", "/api/v1/orgs?parent_id=%00", None),
        ("GET", "/api/v1/orgs/lookup?q=%00", None),
        ("GET", "/api/v1/orgs/lookup?ids=%00", None),
        ("GET", "/api/v1/audit?action=org%00&org_id=acme", None),
        ("POST", "/api/v1/orgs", {"name": "N", "slug": "nul-co", "parent_id": "ac\x00me"}),
        ("POST", "/api/v1/orgs/acme/members", {"email": "da\x00ve@example.com"}),
        ("POST", "/api/v1/orgs/acme/members", {"user_id": "\x00"}),
        ("POST", "/api/v1/orgs/acme/invites", {"email": "nul\x00@example.com"}),
        ("POST", "/api/v1/invites/accept", {"token": "opv_\x00"}),
    ]
    for method, path, body in requests:
        answer = await client.request(method, path, headers=alice, json=body)
        assert answer.status_code != 500, (method, path, answer.text)
        if answer.status_code >= 400:
            assert_problem(answer, answer.status_code)
        else:
            assert answer.json() in ([], {"items": [], "next_cursor": None}), (path, answer.text)
    assert await _snapshot(client) == before
    # Last, because a refused login is audited by design.
    login = await client.post(
        "/api/v1/auth/login", json={"email": "a\x00@example.com", "password": "x\x00"}
    )
    assert login.status_code in (400, 401), login.text
    assert_problem(login, login.status_code)
