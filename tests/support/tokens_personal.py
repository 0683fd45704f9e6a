"""Helpers for personal-access-token tests: making one through the API, exchanging one."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from control_plane.tokens.grants import PERSONAL_TOKEN_TYPE
from tests.support.tokens import exchange

TOKENS = "/api/v1/me/tokens"


async def new_token(
    client: AsyncTestClient[Any],
    headers: dict[str, str],
    *,
    orgs: list[str] | str = "all",
    scopes: list[str] | None = None,
    name: str = "script",
    days: int = 30,
) -> dict[str, Any]:
    """The answer of ``POST /api/v1/me/tokens`` (checked: 201, no-store)."""
    body = {
        "name": name,
        "orgs": orgs,
        "scopes": scopes or ["org:read", "org:write"],
        "expires_in_days": days,
    }
    answer = await client.post(TOKENS, headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    made: dict[str, Any] = answer.json()
    return made


async def exchange_personal(client: AsyncTestClient[Any], token: str, **params: str) -> Any:
    """A token exchange with a personal access token as the subject (its own token type)."""
    return await exchange(client, token, subject_token_type=PERSONAL_TOKEN_TYPE, **params)
