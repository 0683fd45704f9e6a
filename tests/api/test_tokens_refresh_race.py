"""Fifty concurrent refreshes of one refresh token: exactly one wins, on SQLite and PostgreSQL.

The app runs in the test's own event loop and the requests go through ``httpx.ASGITransport``
with ``asyncio.gather``, so they really interleave (database I/O included).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from control_plane.settings import Settings
from control_plane.users.service import create_user
from tests.interop.servers import app_in_this_loop, runtime_of_app
from tests.support.api import PASSWORD

CONCURRENT = 50
ROUNDS = 3


async def test_concurrent_refreshes_of_one_token_have_exactly_one_winner(
    settings: Settings,
) -> None:
    async with app_in_this_loop(settings) as (app, client):
        async with runtime_of_app(app).sessions() as db:
            await create_user(db, email="racer@example.com", password=PASSWORD)
            await db.commit()
        for round_no in range(ROUNDS):
            login = await client.post(
                "/api/v1/auth/login", json={"email": "racer@example.com", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            refresh = login.json()["refresh_token"]
            form = {"grant_type": "refresh_token", "refresh_token": refresh}
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(client.post("/oauth/token", data=form) for _ in range(CONCURRENT))
                ),
                timeout=120,
            )
            outcomes = Counter((a.status_code, a.json().get("error")) for a in answers)
            assert outcomes == {(200, None): 1, (400, "invalid_grant"): CONCURRENT - 1}, (
                round_no,
                outcomes,
            )
            winner = next(a.json() for a in answers if a.status_code == 200)
            follow_up = await client.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]},
            )
            assert follow_up.status_code == 400, "reuse must revoke the winner's new token too"
            assert follow_up.json()["error"] == "invalid_grant"
            me = await client.get(
                "/api/v1/me", headers={"Authorization": f"Bearer {winner['access_token']}"}
            )
            assert me.status_code == 200, "the access token already issued stays valid"
