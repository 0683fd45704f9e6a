"""SSO and two-factor authentication: a provider that vouches for a second factor (its ``amr``
says ``mfa``) makes a session that counts as one with a second factor; otherwise a user with
TOTP on is asked for a code, as after a password."""

from __future__ import annotations

import base64
import json
from typing import Any

from litestar.testing import AsyncTestClient

from tests.sso.conftest import sso_sign_in
from tests.support.api import add_user, login
from tests.support.idp import Idp
from tests.support.mfa import code, enable_mfa, steady_step
from tests.support.oidc import CSRF_FIELD


def _amr(session_token: str) -> list[str]:
    payload = session_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return list(claims["amr"])


async def test_a_provider_without_mfa_leaves_the_totp_step_and_one_with_it_does_not(
    client: AsyncTestClient[Any], idp: Idp, provider: dict[str, Any]
) -> None:
    await add_user(client, "hal@acme.test")
    enrolled = await enable_mfa(client, await login(client, "hal@acme.test"))
    client.cookies.clear()
    idp.set_account("hal", email="hal@acme.test", email_verified=True, amr=["pwd"])
    asked = await sso_sign_in(client, "hal")
    assert asked.status_code == 200, asked.text
    assert "Two-factor authentication" in asked.text
    assert "orgplane_session" not in asked.cookies
    token = CSRF_FIELD.search(asked.text)
    assert token is not None
    steady_step()
    done = await client.post(
        "/ui/login/otp",
        data={"_csrf_token": token.group(1), "otp": code(enrolled.secret)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/orgs"
    # The provider was the first factor, the code the second (not a password).
    assert _amr(done.cookies["orgplane_session"]) == ["fed", "otp"]

    client.cookies.clear()
    idp.set_account("hal", email="hal@acme.test", email_verified=True, amr=["pwd", "mfa"])
    vouched = await sso_sign_in(client, "hal")
    assert vouched.status_code == 303, vouched.text
    assert _amr(vouched.cookies["orgplane_session"]) == ["fed", "otp"]


async def test_a_session_without_a_second_factor_says_fed_only(
    client: AsyncTestClient[Any], idp: Idp, provider: dict[str, Any]
) -> None:
    idp.set_account("ivy", email="ivy@acme.test", email_verified=True, amr=["pwd"])
    done = await sso_sign_in(client, "ivy")
    assert done.status_code == 303, done.text
    assert _amr(done.cookies["orgplane_session"]) == ["fed"]
