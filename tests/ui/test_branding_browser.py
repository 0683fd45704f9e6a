"""Branding in a real browser (Chromium via Playwright): an org admin sets a colour and uploads
a logo through the org page's forms; the logo loads under the UI's CSP (no violation), the mark
and band show, and the switcher shows the same. Screenshots in ``test-output/ui/``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.images import image_bytes
from tests.ui.test_browser import browser, db_backend, live, shot, sign_in

__all__ = ["browser", "db_backend", "live"]  # fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_branding_set_in_the_browser_shows_on_the_org_page_and_the_switcher(
    live: tuple[str, Any], browser: Any, tmp_path: Any
) -> None:
    from playwright.async_api import expect

    base, _ = live
    page = await sign_in(browser, base, "ops@example.com")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.goto("/ui/orgs/new")
    await page.get_by_label("Name").fill("Brandy")
    await page.get_by_label("Slug").fill("brandy")
    await page.get_by_role("button", name="Create organization").click()
    await page.wait_for_url(re.compile(r"/ui/orgs/brandy\?done=created$"))

    await page.get_by_label("Display name").fill("Brandy & Co")
    await page.get_by_label("Primary colour").fill("#7a1fa2")
    await page.get_by_role("button", name="Save branding").click()
    await page.wait_for_url(re.compile(r"/ui/orgs/brandy\?done=saved$"))
    logo = tmp_path / "logo.png"
    logo.write_bytes(image_bytes((64, 64), (122, 31, 162)))
    await page.get_by_label(re.compile("^Logo")).set_input_files(str(logo))
    await page.get_by_role("button", name="Upload logo").click()
    await page.wait_for_url(re.compile(r"/ui/orgs/brandy\?done=saved$"))

    title = page.get_by_role("heading", level=1)
    await expect(title).to_contain_text("Brandy & Co")
    mark = title.locator("img.brand-mark")
    await expect(mark).to_have_count(1)
    # Loaded, not just present: the CSP (img-src 'self') lets the control plane's logo in.
    assert await mark.evaluate("img => img.complete && img.naturalWidth") == 64
    await expect(page.locator("svg.brand-band rect")).to_have_attribute("fill", "#7a1fa2")
    await expect(page.locator("#branding")).to_contain_text("#ffffff")  # text on purple
    await shot(page, "20-org-branding")

    await page.goto("/ui/orgs")
    row = page.get_by_role("row", name=re.compile("Brandy & Co"))
    assert await row.locator("img.brand-mark").evaluate("img => img.naturalWidth") == 64
    await expect(page.get_by_role("button", name="Open Brandy & Co")).to_be_visible()
    await shot(page, "21-switcher-branding")
    assert not [line for line in console if "Content Security Policy" in line]
