"""Passkeys in a real browser: Debian's Chromium via Playwright, with Chrome's virtual
authenticator (CDP ``WebAuthn`` domain: CTAP2, internal, resident keys, user verification)
against a real control plane served on http://localhost (a secure context, and a domain the
browser accepts as RP ID).

A user with TOTP on adds a passkey on the two-factor page (``passkeys.js`` under the UI's
CSP), signs out, and signs in with the password and the passkey; without JavaScript the code
page still signs in with a code. Screenshots land in ``test-output/passkeys/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from control_plane.auth import SESSION_COOKIE
from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.live import serve_control_plane
from tests.support.mfa import Enrolled, code, enable_mfa, steady_step
from tests.support.passkeys import SoftAuthenticator
from tests.support.services import REPO, chromium_binary, need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIGNED_IN = re.compile(r"/ui/(orgs)?$")
#: Each test its own port (xdist may run them at once), in this suite's range 47800-47899.
PORTS = {
    "test_add_a_passkey_then_sign_in_with_it": 47811,
    "test_without_javascript_the_code_still_signs_in": 47812,
}
SHOTS = REPO / "test-output" / "passkeys"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@pytest.fixture
def db_backend() -> str:
    """One real server on SQLite; the service tests cover PostgreSQL."""
    return "sqlite"


@pytest.fixture
def port(request: pytest.FixtureRequest) -> int:
    return PORTS[request.node.originalname]


@pytest.fixture
def base(port: int) -> str:
    """The public URL: http://localhost is a secure context, and a domain for the RP ID."""
    return f"http://localhost:{port}"


@pytest.fixture
async def live(
    make_settings: Any, port: int, base: str
) -> AsyncIterator[tuple[Enrolled, dict[str, str]]]:
    """The served control plane with Ann, TOTP on: her enrolment and API headers."""
    settings = make_settings(
        ORGPLANE_PORT=str(port),
        ORGPLANE_PUBLIC_URL=base,
        ORGPLANE_DEPLOYMENT_ID=f"pk-{uuid.uuid4().hex[:8]}",
    )
    async with serve_control_plane(settings, port) as app:
        async with app.state.runtime.sessions() as db:
            await create_user(db, email="ann@example.com", password=PASSWORD, name="Ann")
            await db.commit()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            answer = await api.post(
                "/api/v1/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            yield await enable_mfa(api, headers), headers  # type: ignore[arg-type]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    need("Chromium", chromium_binary() is not None)
    from playwright.async_api import async_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _password(page: Any) -> None:
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill("ann@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Two-factor authentication").wait_for()


async def _amr(context: Any) -> list[str]:
    cookie = next(c for c in await context.cookies() if c["name"] == SESSION_COOKIE)
    claims = jwt.decode(cookie["value"], options={"verify_signature": False})
    return list(claims["amr"])


async def test_add_a_passkey_then_sign_in_with_it(
    live: tuple[Enrolled, dict[str, str]], browser: Any, base: str
) -> None:
    from playwright.async_api import expect

    enrolled = live[0]
    context = await browser.new_context(base_url=base)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    authenticator = added["authenticatorId"]

    # Sign in with a code (no passkey yet: the page offers none), then add one.
    await _password(page)
    await expect(page.get_by_role("button", name="Use a passkey")).to_have_count(0)
    steady_step()
    await page.get_by_label("One-time code").fill(code(enrolled.secret))
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(SIGNED_IN)
    assert await _amr(context) == ["pwd", "otp"]
    await page.goto("/ui/account/mfa")
    await page.locator("#f-pk-name").fill("This laptop")
    await page.locator("#f-pk-password").fill(PASSWORD)
    await page.get_by_role("button", name="Add a passkey").click()
    await page.get_by_role("button", name="Create the passkey").click()
    await page.wait_for_url(re.compile(r"done=passkey_added"))
    await expect(page.get_by_role("status")).to_contain_text("Passkey added")
    await expect(page.get_by_role("cell", name="This laptop")).to_be_visible()
    await page.screenshot(path=str(SHOTS / "01-passkey-added.png"), full_page=True)
    stored = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(stored["credentials"]) == 1

    # Sign out, and in again with the password and the passkey.
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/ui/login"))
    await _password(page)
    await page.screenshot(path=str(SHOTS / "02-second-step.png"), full_page=True)
    await page.get_by_role("button", name="Use a passkey").click()
    await page.wait_for_url(SIGNED_IN)
    assert await _amr(context) == ["pwd", "hwk"]
    stored = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert stored["credentials"][0]["signCount"] >= 1
    await context.close()


async def test_without_javascript_the_code_still_signs_in(
    live: tuple[Enrolled, dict[str, str]], browser: Any, port: int, base: str
) -> None:
    from playwright.async_api import expect

    enrolled, headers = live
    # Ann has a passkey (added through the API with the software authenticator): the code
    # page carries its options, but without script the passkey form stays hidden.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
        started = await api.post(
            "/api/v1/me/passkeys/registration", headers=headers, json={"password": PASSWORD}
        )
        credential = SoftAuthenticator("localhost", base).create(started.json()["options"])
        body = {"name": "Key", "credential": credential}
        added = await api.post("/api/v1/me/passkeys", headers=headers, json=body)
        assert added.status_code == 201, added.text
    context = await browser.new_context(base_url=base, java_script_enabled=False)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await _password(page)
    assert await page.locator("form[data-passkey]").count() == 1
    await expect(page.get_by_role("button", name="Use a passkey")).to_have_count(0)
    steady_step()
    await page.get_by_label("One-time code").fill(code(enrolled.secret))
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(SIGNED_IN)
    assert await _amr(context) == ["pwd", "otp"]
    await context.close()
