"""The passkey settings: ``ORGPLANE_PASSKEY_RP_ID`` (a parent domain of the public URL's host)
and ``ORGPLANE_PASSKEY_USER_VERIFICATION`` (``required`` refuses an assertion without UV)."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient

from control_plane.auth import SESSION_COOKIE
from control_plane.settings import Settings
from tests.support.api import PASSWORD, add_user, assert_problem, login
from tests.support.mfa import enable_mfa
from tests.support.passkeys import SoftAuthenticator, page_options
from tests.ui.forms import submit

PUBLIC = "http://cp.example.test:8080"
RP_ID = "example.test"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(
        ORGPLANE_PUBLIC_URL=PUBLIC,
        ORGPLANE_PASSKEY_RP_ID=RP_ID,
        ORGPLANE_PASSKEY_USER_VERIFICATION="required",
    )
    return result


async def test_rp_id_and_required_user_verification(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "ann@example.com")
    headers = await login(client, "ann@example.com")
    await enable_mfa(client, headers)
    body = {"password": PASSWORD}
    started = await client.post("/api/v1/me/passkeys/registration", headers=headers, json=body)
    options = started.json()["options"]
    assert options["rp"]["id"] == RP_ID
    assert options["authenticatorSelection"]["userVerification"] == "required"
    # The origin is the public URL's, whatever host the request came to.
    wrong = SoftAuthenticator(RP_ID, "http://127.0.0.1:8080").create(options)
    answer = await client.post(
        "/api/v1/me/passkeys", headers=headers, json={"name": "Key", "credential": wrong}
    )
    assert_problem(answer, 400, "invalid_passkey")
    auth = SoftAuthenticator(RP_ID, PUBLIC)
    started = await client.post("/api/v1/me/passkeys/registration", headers=headers, json=body)
    credential = auth.create(started.json()["options"])
    added = await client.post(
        "/api/v1/me/passkeys", headers=headers, json={"name": "Key", "credential": credential}
    )
    assert added.status_code == 201, added.text

    client.cookies.clear()
    asked = await submit(
        client, "/ui/login", "/ui/login", email="ann@example.com", password=PASSWORD, next="/ui/"
    )
    options = page_options(asked.text)
    assert (options["rpId"], options["userVerification"]) == (RP_ID, "required")
    unverified = json.dumps(auth.get(options, verified=False))
    refused = await submit(client, "/ui/login", "/ui/login/passkey", credential=unverified)
    assert refused.status_code == 401, refused.text
    verified = json.dumps(auth.get(page_options(refused.text)))
    done = await submit(client, "/ui/login", "/ui/login/passkey", credential=verified)
    assert done.status_code == 303, done.text
    claims = jwt.decode(done.cookies[SESSION_COOKIE], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "hwk"]
