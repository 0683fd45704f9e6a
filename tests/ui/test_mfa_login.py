"""The UI's two-step sign-in for an account with TOTP on: the password, then the code, with
no password carried between the steps (an encrypted, short-lived pending-login cookie)."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.testing import AsyncTestClient

from control_plane.auth import SESSION_COOKIE
from tests.support.api import PASSWORD, add_user, login
from tests.support.mfa import code, enable_mfa, steady_step
from tests.ui.forms import submit

Client = AsyncTestClient[Any]
PENDING = "orgplane_pending_login"


async def _password_step(client: Client, email: str, password: str = PASSWORD) -> Any:
    return await submit(
        client, "/ui/login", "/ui/login", email=email, password=password, next="/ui/orgs"
    )


async def test_the_code_is_asked_after_the_password_and_signs_in(client: Client) -> None:
    await add_user(client, "ann@example.com")
    enrolled = await enable_mfa(client, await login(client, "ann@example.com"))
    steady_step()
    asked = await _password_step(client, "ann@example.com")
    assert asked.status_code == 200, asked.text
    assert 'action="/ui/login/otp"' in asked.text
    assert PASSWORD not in asked.text
    assert SESSION_COOKIE not in asked.cookies
    pending = next(h for h in asked.headers.get_list("set-cookie") if h.startswith(PENDING))
    assert "HttpOnly" in pending
    assert "Path=/ui/login" in pending
    assert PASSWORD not in pending

    wrong = await submit(client, "/ui/login", "/ui/login/otp", otp="000000")
    assert wrong.status_code == 401
    assert "not correct" in wrong.text
    done = await submit(client, "/ui/login", "/ui/login/otp", otp=code(enrolled.secret))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/orgs"
    claims = jwt.decode(done.cookies[SESSION_COOKIE], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"]
    assert any(
        h.startswith(f"{PENDING}=") and "Max-Age=0" in h
        for h in done.headers.get_list("set-cookie")
    )
    assert (await client.get("/ui/orgs")).status_code == 200


async def test_a_recovery_code_works_and_no_pending_login_means_start_again(
    client: Client,
) -> None:
    await add_user(client, "bo@example.com")
    enrolled = await enable_mfa(client, await login(client, "bo@example.com"))
    # The second step without the first, or with a forged pending cookie: start again.
    alone = await submit(client, "/ui/login", "/ui/login/otp", otp=enrolled.recovery_codes[0])
    assert alone.status_code == 401
    assert "start again" in alone.text
    client.cookies.set(PENDING, "forged", path="/ui/login")
    forged = await submit(client, "/ui/login", "/ui/login/otp", otp=enrolled.recovery_codes[0])
    assert forged.status_code == 401
    assert "start again" in forged.text

    client.cookies.clear()
    assert (await _password_step(client, "bo@example.com")).status_code == 200
    done = await submit(client, "/ui/login", "/ui/login/otp", otp=enrolled.recovery_codes[0])
    assert done.status_code == 303, done.text
    # A wrong password gets the login page again, with no pending sign-in.
    client.cookies.clear()
    bad = await _password_step(client, "bo@example.com", password="wrong")
    assert bad.status_code == 401
    assert PENDING not in bad.cookies
    assert "email or password is not correct" in bad.text
