"""A personal access token as the subject of the RFC 8693 exchange: narrowed to its orgs and
scopes (and the user's role), only into orgs with ``api_access``, never as staff; and the
problems bad token requests get."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import PersonalToken
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.mfa import mfa_login_body
from tests.support.tokens import exchange, make_org
from tests.support.tokens_personal import TOKENS, exchange_personal, new_token

ALL = ["org:read", "org:write", "org:admin", "org:owner"]


def _refusal(answer: Any, error: str, code: str | None = None) -> str:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == error, body
    if code is not None:
        assert body.get("orgplane_code") == code, body
    return str(body["error_description"])


async def test_org_tokens_are_narrowed_to_the_tokens_orgs_and_scopes(
    client: AsyncTestClient[Any],
) -> None:
    user = await add_user(client, "dev@example.com")
    acme = await make_org(client, "acme", members={user: "owner"}, plan="team")
    beta = await make_org(client, "beta", members={user: "member"}, plan="team")
    await make_org(client, "gamma", members={user: "owner"}, plan="team")
    headers = await login(client, "dev@example.com")
    made = await new_token(client, headers, orgs=[acme, beta], scopes=["org:read", "org:admin"])
    secret = made["token"]

    owner = await exchange_personal(client, secret, audience="org:acme")
    assert owner.status_code == 200, owner.text
    assert owner.json()["scope"] == "org:read org:admin"
    claims = jwt.decode(owner.json()["access_token"], options={"verify_signature": False})
    assert (claims["org_id"], claims["sub"], claims["org_role"]) == (acme, user, "owner")
    assert "api_access" in claims["features"]
    # A member's role allows org:read and org:write; the token only org:read of those.
    member = await exchange_personal(client, secret, audience=f"org:{beta}")
    assert member.status_code == 200, member.text
    assert member.json()["scope"] == "org:read"
    # The access-token type works too: the prefix says what the token is.
    plain = await exchange(client, secret, audience="org:acme", scope="org:admin")
    assert plain.status_code == 200, plain.text
    assert plain.json()["scope"] == "org:admin"

    wider = await exchange_personal(client, secret, audience="org:acme", scope="org:write")
    assert "at most: org:read org:admin" in _refusal(wider, "invalid_scope")
    other = await exchange_personal(client, secret, audience="org:gamma")
    _refusal(other, "invalid_target", "personal_token_org")
    unknown = await exchange_personal(client, secret, audience="org:nope")
    assert _refusal(unknown, "invalid_target").startswith("No such org")


async def test_a_token_whose_scopes_the_role_does_not_allow_gets_none(
    client: AsyncTestClient[Any],
) -> None:
    user = await add_user(client, "eve@example.com")
    await make_org(client, "acme", members={user: "member"}, plan="team")
    made = await new_token(client, await login(client, "eve@example.com"), scopes=["org:admin"])
    answer = await exchange_personal(client, made["token"], audience="org:acme")
    assert "none of the scopes" in _refusal(answer, "invalid_scope")


async def test_all_my_orgs_covers_an_org_joined_later_and_leaving_ends_it(
    client: AsyncTestClient[Any],
) -> None:
    user = await add_user(client, "fay@example.com")
    made = await new_token(client, await login(client, "fay@example.com"), orgs="all")
    assert made["orgs"] == "all"
    later = await make_org(client, "later", members={user: "admin"}, plan="enterprise")
    answer = await exchange_personal(client, made["token"], audience="org:later")
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "org:read org:write"
    async with direct_db(client) as db:
        from control_plane.db.models import Membership

        row = (await db.exec(select(Membership).where(Membership.org_id == later))).one()
        await db.delete(row)
        await db.commit()
    gone = await exchange_personal(client, made["token"], audience="org:later")
    assert _refusal(gone, "invalid_target").startswith("No such org")


@pytest.mark.parametrize(
    ("plan", "features", "allowed"),
    [
        ("free", {}, False),
        ("team", {}, True),
        ("enterprise", {"api_access": False}, False),
        ("free", {"api_access": True}, True),
    ],
)
async def test_the_api_access_feature_decides_whether_a_personal_token_enters(
    client: AsyncTestClient[Any], plan: str, features: dict[str, bool], allowed: bool
) -> None:
    """The plan's ``api_access`` (or an override of it) gates personal tokens; an interactive
    login enters the same org either way."""
    user = await add_user(client, "gus@example.com")
    await make_org(client, "acme", members={user: "owner"}, plan=plan, features=features)
    headers = await login(client, "gus@example.com")
    made = await new_token(client, headers)
    answer = await exchange_personal(client, made["token"], audience="org:acme")
    if allowed:
        assert answer.status_code == 200, answer.text
    else:
        assert "api_access" in _refusal(answer, "invalid_target", "api_access_required")
    login_token = headers["Authorization"].removeprefix("Bearer ")
    assert (await exchange(client, login_token, audience="org:acme")).status_code == 200


async def test_a_platform_admin_does_not_enter_as_staff_with_a_personal_token(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, "acme", plan="enterprise")
    # Signed in with a second factor, as support access needs; the token keeps that ``amr``.
    body = await mfa_login_body(client, "root@example.com")
    made = await new_token(client, {"Authorization": f"Bearer {body['access_token']}"})
    answer = await exchange_personal(
        client, made["token"], audience="org:acme", orgplane_reason="ticket 42"
    )
    assert _refusal(answer, "invalid_target").startswith("No such org")
    staff = await exchange(
        client, body["access_token"], audience="org:acme", orgplane_reason="ticket 42"
    )
    assert staff.status_code == 200, staff.text


async def test_a_wrong_subject_token_of_the_personal_type_is_refused(
    client: AsyncTestClient[Any],
) -> None:
    user = await add_user(client, "hal@example.com")
    await make_org(client, "acme", members={user: "owner"}, plan="team")
    headers = await login(client, "hal@example.com")
    access = headers["Authorization"].removeprefix("Bearer ")
    for subject in (access, "opat_" + "A" * 43, "opat_short"):
        answer = await exchange_personal(client, subject, audience="org:acme")
        _refusal(answer, "invalid_request", "personal_token_invalid")
    made = await new_token(client, headers)
    wrong_type = await exchange(
        client,
        made["token"],
        audience="org:acme",
        subject_token_type="urn:ietf:params:oauth:token-type:refresh_token",
    )
    _refusal(wrong_type, "invalid_request")


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"orgs": "all", "scopes": ["org:read"]}, "validation_error"),  # no expiry
    ({"orgs": "all", "scopes": ["org:read"], "expires_in_days": 0}, "validation_error"),
    ({"orgs": "all", "scopes": ["org:read"], "expires_in_days": 367}, "expiry_too_long"),
    ({"orgs": "all", "scopes": ["org:read"], "expires_in_days": 10**30}, "expiry_too_long"),
    ({"orgs": "all", "scopes": ["org:root"], "expires_in_days": 7}, "unknown_scope"),
    ({"orgs": "all", "scopes": [], "expires_in_days": 7}, "validation_error"),
    ({"orgs": "some", "scopes": ["org:read"], "expires_in_days": 7}, "validation_error"),
    ({"orgs": [], "scopes": ["org:read"], "expires_in_days": 7}, "validation_error"),
    ({"orgs": ["0" * 32], "scopes": ["org:read"], "expires_in_days": 7}, "unknown_org"),
    ({"orgs": ["OTHER"], "scopes": ["org:read"], "expires_in_days": 7}, "unknown_org"),
    ({"orgs": ["\x00"], "scopes": ["org:read"], "expires_in_days": 7}, "unknown_org"),
    ({"orgs": "all", "scopes": ["org:read"], "expires_in_days": 7, "admin": 1}, "validation_error"),
]


@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
async def test_bad_requests_are_problems_and_create_nothing(
    client: AsyncTestClient[Any], body: dict[str, Any], code: str
) -> None:
    await add_user(client, "ivy@example.com")
    other = await add_user(client, "jon@example.com")
    other_org = await make_org(client, "theirs", members={other: "owner"}, plan="team")
    headers = await login(client, "ivy@example.com")
    full = {"name": "n", **body}
    if body["orgs"] == ["OTHER"]:  # an org that exists, of another user
        full["orgs"] = [other_org]
    assert_problem(await client.post(TOKENS, headers=headers, json=full), 400, code)
    for name in ("", " ", "x" * 101, "a\x00b", "line\nbreak"):
        named = {**full, "name": name, "orgs": "all", "scopes": ["org:read"], "expires_in_days": 1}
        assert_problem(await client.post(TOKENS, headers=headers, json=named), 400)
    async with direct_db(client) as db:
        assert (await db.exec(select(PersonalToken))).all() == []


async def test_tokens_need_a_login_and_a_user_holds_a_bounded_number(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from control_plane.tokens import personal_tokens

    assert_problem(await client.get(TOKENS), 401, "unauthenticated")
    await add_user(client, "kim@example.com")
    headers = await login(client, "kim@example.com")
    monkeypatch.setattr(personal_tokens, "MAX_TOKENS_PER_USER", 2)
    first = await new_token(client, headers)
    await new_token(client, headers)
    body = {"name": "3", "orgs": "all", "scopes": ["org:read"], "expires_in_days": 1}
    assert_problem(await client.post(TOKENS, headers=headers, json=body), 409, "too_many_tokens")
    assert (await client.delete(f"{TOKENS}/{first['id']}", headers=headers)).status_code == 204
    assert (await client.post(TOKENS, headers=headers, json=body)).status_code == 201
