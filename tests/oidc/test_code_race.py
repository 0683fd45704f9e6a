"""Twenty concurrent redemptions of one authorization code: exactly one answers tokens, on
SQLite and PostgreSQL, and since the others are replays of a spent code, the access token the
winner got is revoked too (RFC 6749 §4.1.2).

The app runs in the test's own event loop and the requests go through ``httpx.ASGITransport``
with ``asyncio.gather``, so they really interleave (database I/O included).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from control_plane.settings import Settings
from control_plane.users.service import create_user
from tests.interop.servers import app_in_this_loop, runtime_of_app
from tests.support.api import PASSWORD
from tests.support.oidc import (
    REDIRECT_URI,
    callback_params,
    follow_to_client,
    register_client,
    ui_sign_in,
)

CONCURRENT = 20


async def test_concurrent_redemptions_of_one_code_have_exactly_one_winner(
    settings: Settings,
) -> None:
    async with app_in_this_loop(settings) as (app, client):
        async with runtime_of_app(app).sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True
            )
            await create_user(db, email="racer@example.com", password=PASSWORD)
            await db.commit()
        login = await client.post(
            "/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
        )
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await register_client(client, admin, public=True)
        await ui_sign_in(client, "racer@example.com")
        verifier = generate_token(64)
        url = (
            f"/oauth/authorize?client_id={created['client_id']}&redirect_uri={REDIRECT_URI}"
            f"&response_type=code&scope=openid&code_challenge_method=S256"
            f"&code_challenge={create_s256_code_challenge(verifier)}"
        )
        code = callback_params(await follow_to_client(client, url))["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": created["client_id"],
            "code_verifier": verifier,
        }
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.post("/oauth/token", data=form) for _ in range(CONCURRENT))),
            timeout=120,
        )
        outcomes = Counter((a.status_code, a.json().get("error")) for a in answers)
        assert outcomes == {(200, None): 1, (400, "invalid_grant"): CONCURRENT - 1}, outcomes
        winner = next(a.json() for a in answers if a.status_code == 200)
        info = await client.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {winner['access_token']}"}
        )
        assert info.status_code == 401, "the replays revoke what the code bought"
