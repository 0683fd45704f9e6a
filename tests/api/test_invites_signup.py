"""Signing up with an invite token (self sign-up on): a bad invite creates nothing; a good one
is accepted once the account has verified its email (tests/api/test_email_verification.py)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.settings import Settings
from tests.support.api import PASSWORD, assert_problem, login
from tests.support.orgs import make_org, row_counts, user
from tests.support.smtp import Mailbox, delivered, links_of, smtp_env, token_of


@pytest.fixture
def settings(make_settings: Any, smtp: tuple[int, Mailbox]) -> Settings:
    """Self sign-up on (it needs email, for the verification link)."""
    result: Settings = make_settings(ORGPLANE_ALLOW_SIGNUP="true", **smtp_env(smtp[0]))
    return result


async def test_signup_with_an_invite_joins_the_org_or_creates_nothing(
    client: AsyncTestClient[Any], smtp: tuple[int, Mailbox]
) -> None:
    alice = await user(client, "alice@example.com")
    await make_org(client, alice, "acme")
    invite = (
        await client.post(
            "/api/v1/orgs/acme/invites",
            headers=alice,
            json={"email": "new@example.com", "role": "admin"},
        )
    ).json()
    before = await row_counts(client)
    wrong = await client.post(
        "/api/v1/auth/signup",
        json={"email": "other@example.com", "password": PASSWORD, "invite_token": invite["token"]},
    )
    assert_problem(wrong, 403, "invite_email_mismatch")
    bogus = await client.post(
        "/api/v1/auth/signup",
        json={"email": "new@example.com", "password": PASSWORD, "invite_token": "opv_nope"},
    )
    assert_problem(bogus, 400, "invalid_invite")
    assert await row_counts(client) == before
    made = await client.post(
        "/api/v1/auth/signup",
        json={"email": "New@example.com", "password": PASSWORD, "invite_token": invite["token"]},
    )
    assert made.status_code == 201, made.text
    newcomer = await login(client, "new@example.com")
    assert (await client.get("/api/v1/me/orgs", headers=newcomer)).json()["items"] == []
    verification = await delivered(smtp[1], "new@example.com", "Confirm")
    token = token_of(links_of(verification[0])[0])
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": token})
    ).status_code == 200
    accepted = await client.post(
        "/api/v1/invites/accept", headers=newcomer, json={"token": invite["token"]}
    )
    assert accepted.status_code == 200, accepted.text
    mine = (await client.get("/api/v1/me/orgs", headers=newcomer)).json()["items"]
    assert [(o["slug"], o["role"]) for o in mine] == [("acme", "admin")]
    again = await client.post(
        "/api/v1/auth/signup",
        json={"email": "third@example.com", "password": PASSWORD, "invite_token": invite["token"]},
    )
    assert_problem(again, 403, "invite_email_mismatch")
