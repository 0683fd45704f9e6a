"""The passkey forms of ``/ui/account/mfa`` driven as HTML forms (the browser's part, the
WebAuthn call, played by the software authenticator): add, the refusals shown beside their
fields, remove with the password and a code."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import PASSWORD, add_user, login
from tests.support.mfa import enable_mfa
from tests.support.passkeys import SoftAuthenticator, page_options
from tests.ui.forms import submit

PAGE = "/ui/account/mfa"
ORIGIN, RP_ID = "http://127.0.0.1:8080", "127.0.0.1"


async def test_add_and_remove_a_passkey_on_the_page(client: AsyncTestClient[Any]) -> None:
    await add_user(client, "ann@example.com")
    enrolled = await enable_mfa(client, await login(client, "ann@example.com"))
    await submit(client, "/ui/login", "/ui/login", email="ann@example.com", password=PASSWORD)
    signed_in = await submit(client, "/ui/login", "/ui/login/otp", otp=enrolled.recovery_codes[0])
    assert signed_in.status_code == 303, signed_in.text
    shown = await client.get(PAGE)
    assert "You have no passkeys." in shown.text
    assert 'action="/ui/account/mfa/passkeys/start" data-passkey-only hidden' in shown.text

    wrong = await submit(client, PAGE, f"{PAGE}/passkeys/start", name="Key", password="nope")
    assert wrong.status_code == 401
    assert 'id="e-pk-password"' in wrong.text
    started = await submit(client, PAGE, f"{PAGE}/passkeys/start", name="Key", password=PASSWORD)
    assert started.status_code == 200, started.text
    assert started.headers["cache-control"] == "no-store"
    auth = SoftAuthenticator(RP_ID, ORIGIN)
    credential = json.dumps(auth.create(page_options(started.text)))
    garbled = await submit(client, PAGE, f"{PAGE}/passkeys/add", name="Key", credential="{")
    assert garbled.status_code == 400
    added = await submit(client, PAGE, f"{PAGE}/passkeys/add", name="Key", credential=credential)
    assert added.status_code == 303, added.text
    assert added.headers["location"] == f"{PAGE}?done=passkey_added"
    again = await submit(client, PAGE, f"{PAGE}/passkeys/add", name="Key", credential=credential)
    assert again.status_code == 400  # the challenge was spent
    shown = await client.get(PAGE)
    assert "<td>Key</td>" in shown.text
    passkey_id = shown.text.split('<option value="')[1].split('"')[0]

    fields = {"passkey": passkey_id, "password": PASSWORD}
    refused = await submit(client, PAGE, f"{PAGE}/passkeys/remove", **fields, code="000000")
    assert refused.status_code == 401
    assert 'id="e-pk-rm-code"' in refused.text
    code = enrolled.recovery_codes[1]
    removed = await submit(client, PAGE, f"{PAGE}/passkeys/remove", **fields, code=code)
    assert removed.status_code == 303, removed.text
    assert "You have no passkeys." in (await client.get(PAGE)).text
