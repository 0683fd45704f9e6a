"""Helpers for MFA tests: turning TOTP on through the API, and codes made by ``pyotp``.

Codes are made by ``pyotp`` from the secret the API answered (an independent RFC 6238
implementation of the authenticator side), for a given time step offset from now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyotp
from litestar.testing import AsyncTestClient

from tests.support.api import PASSWORD, login

TOTP = "/api/v1/me/mfa/totp"
STEP = 30


def steady_step() -> None:
    """Wait until at least 4 seconds are left in the current time step, so that codes made
    now for step offsets -1, 0 and +1 are all still accepted when the server checks them."""
    left = STEP - time.time() % STEP
    if left < 4:
        time.sleep(left + 0.1)


def code(secret: str, offset: int = 0) -> str:
    """The TOTP of ``secret`` for the time step ``offset`` steps from now."""
    return pyotp.TOTP(secret).at(time.time() + offset * STEP)


@dataclass(frozen=True)
class Enrolled:
    secret: str
    otpauth_uri: str
    recovery_codes: list[str]


async def enable_mfa(
    client: AsyncTestClient[Any], headers: dict[str, str], password: str = PASSWORD
) -> Enrolled:
    """Turn TOTP on for the caller, confirming with the code of the *previous* step (so the
    current and next steps are still unused for the test's logins)."""
    started = await client.post(TOTP, headers=headers, json={"password": password})
    assert started.status_code == 201, started.text
    assert started.headers["cache-control"] == "no-store"
    secret = started.json()["secret"]
    steady_step()
    confirmed = await client.post(
        f"{TOTP}/confirm", headers=headers, json={"code": code(secret, -1)}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.headers["cache-control"] == "no-store"
    return Enrolled(secret, started.json()["otpauth_uri"], confirmed.json()["recovery_codes"])


async def login_answer(
    client: AsyncTestClient[Any], email: str, otp: str | None = None, password: str = PASSWORD
) -> Any:
    """The answer of ``POST /api/v1/auth/login`` (unchecked)."""
    body = {"email": email, "password": password, **({"otp": otp} if otp else {})}
    return await client.post("/api/v1/auth/login", json=body)


async def mfa_login_body(client: AsyncTestClient[Any], email: str) -> dict[str, Any]:
    """The login answer of a sign-in with a second factor: TOTP turned on for ``email`` (which
    signs in with :data:`PASSWORD`), then a login with a code."""
    enrolled = await enable_mfa(client, await login(client, email))
    steady_step()
    answer = await login_answer(client, email, code(enrolled.secret))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
