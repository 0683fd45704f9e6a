"""Single sign-on in a real browser (Debian's Chromium via Playwright) against a real OpenID
provider (oidc-provider on Node.js): the login page's "Sign in with Acme SSO" button, the
provider's sign-in page, the redirect back, a session. The account is made just in time with a
membership from its groups; after the groups change at the provider, the next sign-in removes
the membership and adds the new one.

Screenshots land in ``test-output/sso/``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from control_plane.db.models import Membership, Org, User
from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.idp import CLIENT_ID, CLIENT_SECRET, Idp, free_port, run_idp
from tests.support.live import serve_control_plane
from tests.support.services import REPO, chromium_binary, need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = REPO / "test-output" / "sso"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


@pytest.fixture
def db_backend() -> str:
    """One real server on SQLite is enough here; tests/sso covers PostgreSQL."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any, tmp_path: Path) -> AsyncIterator[tuple[str, Any, Idp]]:
    """The control plane's URL and app, and the provider configured in it as ``acme`` with
    the rules groups=eng -> eng (member), groups=ops -> ops (admin)."""
    port = free_port()
    settings = make_settings(
        ORGPLANE_PORT=str(port), ORGPLANE_DEPLOYMENT_ID=f"ssob-{uuid.uuid4().hex[:8]}"
    )
    base = f"http://127.0.0.1:{port}"
    callback = f"{base}/ui/auth/sso/acme/callback"
    async with serve_control_plane(settings, port) as app, run_idp(tmp_path, [callback]) as idp:
        async with app.state.runtime.sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True
            )
            await db.commit()
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
            )
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            for slug in ("eng", "ops"):
                made = await http.post(
                    "/api/v1/orgs", headers=admin, json={"name": slug.title(), "slug": slug}
                )
                assert made.status_code == 202, made.text
            provider = await http.post(
                "/api/v1/identity-providers",
                headers=admin,
                json={
                    "slug": "acme",
                    "display_name": "Acme SSO",
                    "discovery_url": idp.discovery_url,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "scopes": ["openid", "email", "profile", "groups"],
                },
            )
            assert provider.status_code == 201, provider.text
            rules = f"/api/v1/identity-providers/{provider.json()['id']}/rules"
            for value, role in (("eng", "member"), ("ops", "admin")):
                rule = {"claim": "groups", "value": value, "org": value, "role": role}
                assert (await http.post(rules, headers=admin, json=rule)).status_code == 201
        yield base, app, idp


async def _roles(app: Any, email: str) -> dict[str, str]:
    async with app.state.runtime.sessions() as db:
        query = (
            select(Org.slug, Membership.role)
            .join(Membership, col(Membership.org_id) == col(Org.id))
            .join(User, col(User.id) == col(Membership.user_id))
            .where(col(User.email) == email)
        )
        return dict((await db.exec(query)).all())


async def test_sign_in_with_the_provider_in_chromium(live: tuple[str, Any, Idp]) -> None:
    need("Chromium", chromium_binary() is not None)
    from playwright.async_api import async_playwright, expect

    base, app, idp = live
    idp.set_account("zoe", email="zoe@acme.test", email_verified=True, name="Zoe", groups=["eng"])
    SHOTS.mkdir(parents=True, exist_ok=True)

    async def sign_in(browser: Any, shot: str, org: str) -> None:
        page = await (await browser.new_context()).new_page()
        page.set_default_timeout(20_000)
        await page.goto(f"{base}/ui/login?next=/ui/orgs")
        await page.get_by_role("link", name="Sign in with Acme SSO").click()
        await expect(page.get_by_role("heading", name="Test IdP sign-in")).to_be_visible()
        await page.get_by_label("Account").fill("zoe")
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_url(f"{base}/ui/orgs")
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        await expect(page.get_by_role("link", name=org, exact=True)).to_be_visible()
        await page.screenshot(path=str(SHOTS / shot), full_page=True)
        await page.context.close()

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            await sign_in(chromium, "01-signed-in.png", "Eng")
            assert await _roles(app, "zoe@acme.test") == {"eng": "member"}
            idp.set_account("zoe", email="zoe@acme.test", email_verified=True, groups=["ops"])
            await sign_in(chromium, "02-groups-changed.png", "Ops")
        finally:
            await chromium.close()
    assert await _roles(app, "zoe@acme.test") == {"ops": "admin"}
