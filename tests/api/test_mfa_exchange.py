"""MFA in the token exchange: ``amr`` in access tokens (kept by refresh), orgs that require
MFA, staff support access, and personal access tokens made in an MFA session or not."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.testing import AsyncTestClient

from tests.support.api import add_user, assert_problem, login
from tests.support.mfa import login_answer, mfa_login_body
from tests.support.tokens import TOKEN_URL, exchange, make_org
from tests.support.tokens_personal import exchange_personal, new_token

REASON = "ticket 99: the instance does not start"


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _refused(answer: Any, code_: str) -> None:
    assert answer.status_code == 400, answer.text
    assert (answer.json()["error"], answer.json()["orgplane_code"]) == ("invalid_target", code_)


async def test_refresh_keeps_amr(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "amy@example.com")
    body = await mfa_login_body(client, "amy@example.com")
    assert _claims(body["access_token"])["amr"] == ["pwd", "otp"]
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    refreshed = await client.post(TOKEN_URL, data=form)
    assert refreshed.status_code == 200, refreshed.text
    assert _claims(refreshed.json()["access_token"])["amr"] == ["pwd", "otp"]
    plain = await login_answer(client, "amy@example.com", password="correct horse battery")
    assert_problem(plain, 401, "mfa_required")


async def test_an_org_that_requires_mfa_refuses_a_password_only_sign_in(
    client: AsyncTestClient[Any],
) -> None:
    owner = await add_user(client, "own@example.com")
    admin = await add_user(client, "adm@example.com")
    member = await add_user(client, "mem@example.com")
    await make_org(
        client, "acme", members={owner: "owner", admin: "admin", member: "member"}, plan="team"
    )
    url = "/api/v1/orgs/acme/mfa-requirement"
    member_headers = await login(client, "mem@example.com")
    denied = await client.put(url, headers=member_headers, json={"required": True})
    assert_problem(denied, 403)
    # An admin needs a sign-in with a second factor to switch it (or lock themselves out).
    password_only = await login(client, "adm@example.com")
    refused = await client.put(url, headers=password_only, json={"required": True})
    assert_problem(refused, 403, "mfa_required")
    admin_body = await mfa_login_body(client, "adm@example.com")
    admin_headers = {"Authorization": f"Bearer {admin_body['access_token']}"}
    switched = await client.put(url, headers=admin_headers, json={"required": True})
    assert switched.status_code == 200, switched.text
    assert switched.json()["require_mfa"] is True

    plain = member_headers["Authorization"].removeprefix("Bearer ")
    _refused(await exchange(client, plain, audience="org:acme"), "mfa_required")
    body = await mfa_login_body(client, "mem@example.com")
    entered = await exchange(client, body["access_token"], audience="org:acme")
    assert entered.status_code == 200, entered.text
    assert _claims(entered.json()["access_token"])["amr"] == ["pwd", "otp"]

    # Personal access tokens: one made in a password-only session cannot enter; one made in
    # the MFA session can.
    old = await new_token(client, member_headers, orgs="all", scopes=["org:read"])
    _refused(await exchange_personal(client, old["token"], audience="org:acme"), "mfa_required")
    mfa_headers = {"Authorization": f"Bearer {body['access_token']}"}
    made = await new_token(client, mfa_headers, orgs="all", scopes=["org:read"])
    by_token = await exchange_personal(client, made["token"], audience="org:acme")
    assert by_token.status_code == 200, by_token.text

    off = await client.put(url, headers=admin_headers, json={"required": False})
    assert off.json()["require_mfa"] is False
    assert (await exchange(client, plain, audience="org:acme")).status_code == 200


async def test_staff_need_mfa_for_support_access(client: AsyncTestClient[Any]) -> None:
    owner = await add_user(client, "boss@example.com")
    await add_user(client, "staff@orgplane.test", admin=True)
    await make_org(client, "acme", members={owner: "owner"})
    staff = (await login(client, "staff@orgplane.test"))["Authorization"].removeprefix("Bearer ")
    refused = await exchange(client, staff, audience="org:acme", orgplane_reason=REASON)
    _refused(refused, "staff_mfa_required")
    body = await mfa_login_body(client, "staff@orgplane.test")
    entered = await exchange(
        client, body["access_token"], audience="org:acme", orgplane_reason=REASON
    )
    assert entered.status_code == 200, entered.text
    claims = _claims(entered.json()["access_token"])
    assert (claims["org_role"], claims["act"]["email"]) == ("admin", "staff@orgplane.test")
    # Platform admins set an org's requirement too (an owner's own org, here without MFA).
    staff_headers = {"Authorization": f"Bearer {body['access_token']}"}
    url = "/api/v1/orgs/acme/mfa-requirement"
    switched = await client.put(url, headers=staff_headers, json={"required": True})
    assert switched.json()["require_mfa"] is True
    assert_problem(await client.put(url, headers=staff_headers, json={"required": "yes"}), 400)
