"""The feature-rules page in Chromium: a platform admin picks a user and an org through the
autocomplete (the users list and the org lookup), explains, and reads which rule decided each
feature. The screenshot is checked for being a real page (not a pixel diff)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat

from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.live import serve_control_plane
from tests.support.services import REPO, chromium_binary, need
from tests.ui.browser import CHROMIUM_ARGS, free_port, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOT = REPO / "test-output" / "ui" / "features-explain.png"


@pytest.fixture
def db_backend() -> str:
    """One real server on SQLite is enough here; the API tests cover PostgreSQL."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any) -> AsyncIterator[str]:
    """A control plane with ops@ (platform admin), ann@ a member of ``acme``, and a rule
    making ``beta`` exclusive to acme."""
    port = free_port()
    settings = make_settings(
        ORGPLANE_PORT=str(port), ORGPLANE_DEPLOYMENT_ID=f"feat-{uuid.uuid4().hex[:8]}"
    )
    base = f"http://127.0.0.1:{port}"
    async with serve_control_plane(settings, port) as app:
        async with app.state.runtime.sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True
            )
            await create_user(db, email="ann@example.com", password=PASSWORD, name="Ann")
            await db.commit()
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            login = {"email": "ops@example.com", "password": PASSWORD}
            token = (await http.post("/api/v1/auth/login", json=login)).json()["access_token"]
            admin = {"Authorization": f"Bearer {token}"}
            body = {"name": "Acme Corp", "slug": "acme", "owner_email": "ann@example.com"}
            acme = (await http.post("/api/v1/orgs", headers=admin, json=body)).json()
            rule = {"exclusive_org_ids": [acme["id"]]}
            put = await http.put("/api/v1/features/beta", headers=admin, json=rule)
            assert put.status_code == 200, put.text
        yield base


async def test_explain_with_autocomplete_in_chromium(live: str) -> None:
    need("Chromium", chromium_binary() is not None)
    from playwright.async_api import async_playwright, expect

    SHOT.parent.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            page = await (await chromium.new_context(base_url=live)).new_page()
            page.set_default_timeout(20_000)
            await sign_in(page, "ops@example.com")
            await page.get_by_role("link", name="Feature rules").click()
            await expect(page.get_by_role("heading", name="Feature rules", level=1)).to_be_visible()

            await page.get_by_role("combobox", name=re.compile("^User")).press_sequentially("ann")
            await page.get_by_role("option", name="Ann (ann@example.com)").click()
            user = page.get_by_role("combobox", name=re.compile("^User"))
            await expect(user).to_have_value("ann@example.com")
            org = page.get_by_role("combobox", name=re.compile("slug or id"))
            await org.press_sequentially("acm")
            await page.get_by_role("option", name="Acme Corp (acme)").click()
            await expect(org).to_have_value(re.compile("^[0-9a-f]{32}$"))
            await page.get_by_role("button", name="Explain").click()

            table = page.locator("#explanation")
            await expect(table).to_contain_text("for ann@example.com (owner)")
            beta = page.locator("#explain-beta")
            await expect(beta).to_contain_text("on")
            await expect(beta).to_contain_text("exclusive_org")
            await expect(beta).to_contain_text("exclusive to the organization acme")
            await expect(page.locator("#explain-sso")).to_contain_text("off")
            assert "user=ann%40example.com" in page.url  # a plain GET form: a shareable address
            await page.screenshot(path=str(SHOT), full_page=True)
        finally:
            await chromium.close()

    with Image.open(SHOT) as image:
        assert image.width >= 800, image.size
        assert image.height >= 600, image.size
        spread = ImageStat.Stat(image.convert("L")).stddev[0]
        assert spread > 10, f"the screenshot looks blank (grey-level spread {spread:.1f})"
