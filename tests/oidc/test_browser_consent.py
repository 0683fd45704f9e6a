"""The consent page in a real browser (Debian's Chromium via Playwright): sign in through the
authorization request, allow a third-party client, and arrive at the client's redirect URI with
a code that authlib's client redeems. The consent form answers with a redirect to another
origin, which Chromium allows only because the page's ``form-action`` names that origin.

Screenshots land in ``test-output/oidc/``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.live import serve_control_plane
from tests.support.oidc import REDIRECT_URI, register_client
from tests.support.services import REPO, chromium_binary, need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = REPO / "test-output" / "oidc"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


@pytest.fixture
def db_backend() -> str:
    """One real server on SQLite is enough here; tests/oidc covers PostgreSQL."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any, unused_tcp_port: int) -> AsyncIterator[tuple[str, str]]:
    """The control plane's URL and an admin's access token; ``ann@example.com`` exists."""
    settings = make_settings(
        ORGPLANE_PORT=str(unused_tcp_port), ORGPLANE_DEPLOYMENT_ID=f"oidcb-{uuid.uuid4().hex[:8]}"
    )
    base = f"http://127.0.0.1:{unused_tcp_port}"
    async with serve_control_plane(settings, unused_tcp_port) as app:
        async with app.state.runtime.sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True
            )
            await create_user(db, email="ann@example.com", password=PASSWORD, name="Ann")
            await db.commit()
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
            )
        yield base, login.json()["access_token"]


async def test_sign_in_consent_and_code_in_chromium(live: tuple[str, str]) -> None:
    need("Chromium", chromium_binary() is not None)
    from playwright.async_api import async_playwright, expect

    base, admin_token = live
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = await register_client(
            http, {"Authorization": f"Bearer {admin_token}"}, first_party=False
        )
    oauth = AsyncOAuth2Client(
        created["client_id"],
        created["client_secret"],
        scope="openid email",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    url, state = oauth.create_authorization_url(
        base + "/oauth/authorize", code_verifier=verifier, nonce=generate_token(16)
    )
    arrived: list[str] = []

    async def callback(route: Any) -> None:  # the client's server, as the browser sees it
        arrived.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body="<h1>Signed in</h1>")

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            page = await (await chromium.new_context()).new_page()
            page.set_default_timeout(20_000)
            await page.route(REDIRECT_URI + "*", callback)
            await page.goto(url)
            await page.get_by_label("Email").fill("ann@example.com")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Allow Wiki?")).to_be_visible()
            await page.screenshot(path=str(SHOTS / "01-consent.png"), full_page=True)
            await page.get_by_role("button", name="Allow").click()
            await expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
        finally:
            await chromium.close()
    [landed] = arrived
    params = {k: v[0] for k, v in parse_qs(urlsplit(landed).query).items()}
    assert params["state"] == state
    token = await oauth.fetch_token(
        base + "/oauth/token", authorization_response=landed, code_verifier=verifier
    )
    assert "id_token" in token
    await oauth.aclose()
