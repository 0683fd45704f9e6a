"""The ``security.signal`` webhook event: a burst of refused token exchanges or forged tokens.

Proves: refusals are counted per address and per claimed user in windows of
``ORGPLANE_SECURITY_SIGNAL_WINDOW`` seconds; the refusal that reaches
``ORGPLANE_SECURITY_SIGNAL_THRESHOLD`` raises one event per scope (delivered, signed, to a real
receiver), fewer raise none, and more in the same window raise no second one; a forged bearer
token on the API counts too (``kind: forged_token``). The refused requests are answered as
before.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, func, select

from control_plane.app import create_app
from control_plane.db.models import WebhookEvent
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from tests.fleet.receiver import receiver
from tests.support.api import add_user, direct_db, login
from tests.support.wait import eventually

THRESHOLD = 3
WINDOW = 60


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
async def signal_client(make_settings: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = make_settings(
        ORGPLANE_SECURITY_SIGNAL_THRESHOLD=str(THRESHOLD),
        ORGPLANE_SECURITY_SIGNAL_WINDOW=str(WINDOW),
        ORGPLANE_WEBHOOK_ALLOW_PRIVATE="true",
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        yield client


def _forged(subject: str) -> str:
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "nbf": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, "not-the-platform-key-at-all-32bytes!", algorithm="HS256")


async def _signals(client: AsyncTestClient[Any]) -> int:
    async with direct_db(client) as db:
        query = select(func.count()).where(col(WebhookEvent.type) == "security.signal")
        return int((await db.exec(query)).one())


async def _exchange(client: AsyncTestClient[Any], subject_token: str) -> Any:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": "org:acme",
        },
    )


async def test_a_burst_of_forged_exchanges_raises_one_signal_per_scope(
    signal_client: AsyncTestClient[Any],
) -> None:
    client = signal_client
    await add_user(client, "root@example.com", admin=True)
    admin = await login(client, "root@example.com")
    victim = await add_user(client, "victim@example.com")
    async with receiver() as hook:
        made = await client.post(
            "/api/v1/webhooks",
            headers=admin,
            json={"url": hook.url, "event_types": ["security.signal"]},
        )
        assert made.status_code == 201, made.text
        hook.secret = made.json()["secret"]

        for _ in range(THRESHOLD - 1):
            refused = await _exchange(client, _forged(victim))
            assert refused.status_code == 400, refused.text
        assert await _signals(client) == 0
        assert (await _exchange(client, _forged(victim))).status_code == 400
        assert await _signals(client) == 2  # the address and the claimed user
        assert (await _exchange(client, _forged(victim))).status_code == 400
        assert await _signals(client) == 2  # once per window

        # Forged bearer tokens on the API count as well, under the user they claim.
        other = uuid.uuid4().hex
        for _ in range(THRESHOLD):
            answer = await client.get(
                "/api/v1/me", headers={"Authorization": f"Bearer {_forged(other)}"}
            )
            assert answer.status_code == 401
        assert await _signals(client) == 3

        def delivered() -> list[dict[str, Any]]:
            payloads = hook.payloads()
            return payloads if len(payloads) == 3 else []

        payloads = await eventually(delivered, what="three signed security.signal deliveries")
    by_scope = {(p["data"]["scope"], p["data"]["kind"]): p["data"] for p in payloads}
    assert by_scope[("user_id", "token_exchange")]["user_id"] == victim
    assert by_scope[("ip", "token_exchange")]["count"] == THRESHOLD
    assert by_scope[("user_id", "forged_token")]["user_id"] == other
    assert all(p["type"] == "security.signal" for p in payloads)
    assert all(p["data"]["window_seconds"] == WINDOW for p in payloads)
