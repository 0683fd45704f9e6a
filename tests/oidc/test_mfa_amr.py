"""A user who signs in with a second factor on the way through ``/oauth/authorize``: the ID
token says so (``amr: ["pwd", "otp"]``, RFC 8176), verified against the published JWKS, and the
approval is audited."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent
from tests.support.api import PASSWORD, add_user, direct_db, login
from tests.support.mfa import code, enable_mfa, steady_step
from tests.support.oidc import REDIRECT_URI, callback_params, follow_to_client, register_client
from tests.ui.forms import submit

Client = AsyncTestClient[Any]


async def test_second_factor_reaches_the_id_token(
    client: Client, admin: dict[str, str], pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    user_id = await add_user(client, "ann@example.com")
    enrolled = await enable_mfa(client, await login(client, "ann@example.com"))
    client.cookies.clear()
    steady_step()
    url = (
        f"/oauth/authorize?client_id={created['client_id']}&redirect_uri={REDIRECT_URI}"
        f"&response_type=code&scope=openid&nonce=n-2&code_challenge={pkce[1]}"
        "&code_challenge_method=S256"
    )
    login_page = await follow_to_client(client, url)
    assert login_page.status_code == 200, login_page.text
    wanted = "/ui" + url  # where the sign-in comes back to
    asked = await submit(
        client,
        "/ui/login",
        "/ui/login",
        email="ann@example.com",
        password=PASSWORD,
        next=wanted,
    )
    assert asked.status_code == 200, asked.text
    done = await submit(client, "/ui/login", "/ui/login/otp", otp=code(enrolled.secret))
    assert done.status_code == 303, done.text
    issued = callback_params(await follow_to_client(client, done.headers["location"]))
    token = await client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": issued["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce[0],
        },
        auth=(created["client_id"], created["client_secret"]),
    )
    assert token.status_code == 200, token.text
    id_token = token.json()["id_token"]
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == kid))
    claims = jwt.decode(
        id_token,
        key,
        algorithms=["RS256"],
        audience=created["client_id"],
        issuer="http://127.0.0.1:8080",
    )
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["sub"] == user_id
    assert claims["nonce"] == "n-2"
    async with direct_db(client) as db:
        approvals = (
            await db.exec(select(AuditEvent).where(col(AuditEvent.action) == "oauth.authorize"))
        ).all()
    assert [(e.actor_id, e.target_id) for e in approvals] == [(user_id, created["client_id"])]
