"""The admin UI in a real browser (Debian's Chromium via Playwright) against a real control
plane with the local provisioner: an org is created, reaches ``running``, gains a member by
invite, is opened through the switcher, and is deleted after a cancelled first attempt.

Screenshots of every page land in ``test-output/ui/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control_plane.db.models import Instance, Org
from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.services import REPO, chromium_binary, need
from tests.support.wait import eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = REPO / "test-output" / "ui"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ORG_PORT = 18443  # only ever intercepted by the browser, never connected to
GRACE_SECONDS = 6


@pytest.fixture
def db_backend() -> str:
    """One real server on SQLite is enough here; the API tests cover PostgreSQL."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any, unused_tcp_port: int) -> AsyncIterator[tuple[str, Any]]:
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_DEPLOYMENT_ID=f"ui-{uuid.uuid4().hex[:8]}",
        ORGPLANE_DELETION_GRACE_SECONDS=str(GRACE_SECONDS),
        ORGPLANE_ORG_URL_PORT=str(ORG_PORT),
    )
    async with serve_control_plane(settings, unused_tcp_port) as app:
        async with app.state.runtime.sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True, name="Ops"
            )
            await create_user(db, email="ann@example.com", password=PASSWORD, name="Ann")
            await db.commit()
        yield f"http://127.0.0.1:{unused_tcp_port}", app


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


async def shot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def sign_in(browser: Any, base: str, email: str) -> Any:
    context = await browser.new_context(base_url=base)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await page.goto("/ui/")
    assert "/ui/login" in page.url
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/ui/(orgs)?$"))
    return page


async def org_row(app: Any, slug: str) -> tuple[Org | None, Instance | None]:
    async with app.state.runtime.sessions() as db:
        from sqlmodel import select

        org = (await db.exec(select(Org).where(Org.slug == slug))).first()
        return org, (await db.get(Instance, org.id) if org else None)


async def test_admin_and_member_flows(live: tuple[str, Any], browser: Any) -> None:
    from playwright.async_api import expect

    base, app = live
    admin = await sign_in(browser, base, "ops@example.com")
    await expect(admin.get_by_role("heading", name="Platform dashboard")).to_be_visible()
    await shot(admin, "01-dashboard-empty")

    # Create an org; a wrong slug first shows the API's message next to the field.
    await admin.get_by_role("link", name="New organization").click()
    await admin.get_by_label("Name").fill("Acme Corp")
    await admin.get_by_label("Slug").fill("Acme Corp!")
    await admin.get_by_role("button", name="Create organization").click()
    await expect(admin.locator("#e-slug")).to_be_visible()
    await shot(admin, "02-create-org-error")
    await admin.get_by_label("Slug").fill("acme")
    await admin.get_by_role("button", name="Create organization").click()
    await admin.wait_for_url(re.compile(r"/ui/orgs/acme\?done=created$"))

    # The live refresh shows the local instance reach running without a reload.
    await expect(admin.locator("#phase-badge")).to_have_text("running", timeout=90_000)
    await expect(admin.locator("#timeline")).to_contain_text("phase.running")
    await expect(admin.locator("#heartbeat")).not_to_have_text("never")
    await shot(admin, "03-org-detail-running")

    # Invite Ann; the link is shown once, with the token in its fragment.
    await admin.get_by_role("link", name=re.compile("Manage members")).click()
    await admin.get_by_label("Email").fill("ann@example.com")
    await admin.get_by_role("button", name="Invite").click()
    link = (await admin.locator("#invite-link").inner_text()).strip()
    assert re.search(r"/ui/invites/accept#token=opv_", link), link
    await shot(admin, "04-org-members-invite")

    # Ann accepts in her own browser context, then opens the org from the switcher.
    ann = await sign_in(browser, base, "ann@example.com")
    await ann.goto(link)
    await expect(ann.get_by_label("Invite token")).to_have_value(re.compile("^opv_"))
    assert "#" not in ann.url  # the script took the token out of the address bar
    await shot(ann, "05-invite-accept")
    await ann.get_by_role("button", name="Accept invite").click()
    await expect(ann.get_by_text("Invite accepted")).to_be_visible()
    row = ann.get_by_role("row", name=re.compile("Acme Corp"))
    await expect(row).to_contain_text("member")
    await expect(row).to_contain_text("running")
    await shot(ann, "06-switcher")

    await ann.context.route(
        re.compile(r"^http://acme\.localhost"),
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<h1>Acme instance</h1>"
        ),
    )
    await ann.get_by_role("button", name="Open Acme Corp").click()
    # A member goes to the instance's sign-in (no token in the URL; the sign-in itself runs
    # against real instances in tests/ui/test_instance_sign_in.py).
    await ann.wait_for_url(f"http://acme.localhost:{ORG_PORT}/auth/login")

    # The dashboard shows the org running with two members; search autocompletes.
    await admin.goto("/ui/")
    acme = admin.get_by_role("row", name=re.compile("Acme Corp"))
    await expect(acme).to_contain_text("running")
    await expect(acme.locator("td").nth(4)).to_have_text("2")
    await admin.get_by_label("Search").fill("acm")
    option = admin.get_by_role("option", name="Acme Corp (acme)")
    await expect(option).to_be_visible()
    await shot(admin, "07-dashboard-autocomplete")
    await admin.get_by_label("Search").press("ArrowDown")
    await admin.get_by_label("Search").press("Enter")
    await admin.wait_for_url(re.compile(r"/ui/orgs/[0-9a-f]{32}$"))

    # Delete, cancel within the window, then delete for real.
    await admin.get_by_label(re.compile("Type acme to confirm")).last.fill("acme")
    await admin.get_by_role("button", name="Delete organization").click()
    await expect(admin.get_by_role("heading", name="Pending deletion")).to_be_visible()
    await expect(admin.locator("#countdown")).to_have_text(re.compile(r"^in \d+ s$"))
    await shot(admin, "08-pending-deletion")
    await admin.get_by_role("button", name="Cancel deletion").click()
    await expect(admin.get_by_text("Deletion cancelled.")).to_be_visible()
    await expect(admin.get_by_role("button", name="Delete organization")).to_be_visible()
    org, _ = await org_row(app, "acme")
    assert org is not None
    assert org.delete_after is None
    assert org.desired_state == "running"

    await admin.get_by_label(re.compile("Type acme to confirm")).last.fill("acme")
    await admin.get_by_role("button", name="Delete organization").click()
    await expect(admin.locator("#live-note")).to_have_text(
        "This organization no longer exists.", timeout=GRACE_SECONDS * 1000 + 30_000
    )
    provisioner = app.state.runtime.provisioner

    async def no_instance_left() -> bool:
        return await provisioner.list() == []

    await eventually(no_instance_left, what="the org's instance removed", interval=0.3)
    await admin.goto("/ui/")
    await expect(admin.get_by_text("No organizations match.")).to_be_visible()

    # The audit log shows the whole story.
    await admin.goto("/ui/admin/audit?action=org.*")
    for action in (
        "org.create",
        "org.delete_requested",
        "org.delete_cancelled",
        "org.delete_finalized",
    ):
        await expect(admin.get_by_role("cell", name=action, exact=True).first).to_be_visible()
    await shot(admin, "09-audit-log")


async def test_admin_pages_and_escaping(live: tuple[str, Any], browser: Any) -> None:
    from playwright.async_api import expect

    base, app = live
    admin = await sign_in(browser, base, "ops@example.com")
    dialogs: list[str] = []
    admin.on("dialog", lambda dialog: dialogs.append(dialog.message))

    # A hostile name renders as text and runs nothing.
    await admin.goto("/ui/orgs/new")
    await admin.get_by_label("Name").fill("<script>alert(1)</script>")
    await admin.get_by_label("Slug").fill("evil")
    await admin.get_by_role("button", name="Create organization").click()
    await expect(admin.get_by_role("heading", level=1)).to_contain_text("<script>alert(1)</script>")
    await admin.goto("/ui/")
    await expect(admin.get_by_role("link", name="<script>alert(1)</script>")).to_be_visible()
    assert dialogs == []

    await admin.goto("/ui/admin/keys")
    before = await admin.locator("tbody tr").count()
    await admin.get_by_role("button", name="Rotate signing key").click()
    await expect(admin.get_by_text("A new signing key was published")).to_be_visible()
    assert await admin.locator("tbody tr").count() == before + 1
    await shot(admin, "10-signing-keys")

    await admin.goto("/ui/admin/users")
    await admin.get_by_label("Email", exact=True).fill("bob@example.com")
    await admin.get_by_label("Initial password").fill(PASSWORD)
    await admin.get_by_role("button", name="Create user").click()
    await expect(admin.get_by_text("User created.")).to_be_visible()
    await admin.get_by_role("button", name="Disable bob@example.com").click()
    await expect(admin.get_by_role("row", name=re.compile("bob@example.com"))).to_contain_text(
        "disabled"
    )
    await shot(admin, "11-users")

    # Keyboard only: the skip link is the first stop and shows a focus ring.
    await admin.keyboard.press("Tab")
    focused = admin.locator(":focus")
    await expect(focused).to_have_text("Skip to content")
    outline = await focused.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"

    await admin.goto("/ui/account/password")
    await admin.get_by_label("Current password").fill("wrong password entirely")
    await admin.get_by_label("New password").fill("another long password")
    await admin.get_by_role("button", name="Change password").click()
    await expect(admin.locator("#e-current_password")).to_be_visible()
    await shot(admin, "12-change-password")
    await admin.get_by_label("Current password").fill(PASSWORD)
    await admin.get_by_label("New password").fill("another long password")
    await admin.get_by_role("button", name="Change password").click()
    await expect(admin.get_by_text("Your password was changed.")).to_be_visible()
    await admin.get_by_role("button", name="Sign out").click()
    await admin.wait_for_url(re.compile(r"/ui/login$"))
    await shot(admin, "13-login")
    await admin.goto("/ui/orgs")
    assert "/ui/login" in admin.url
    await _cleanup(app, "evil")


async def _cleanup(app: Any, slug: str) -> None:
    """Remove the instance right away (teardown would too) to free the CPU sooner."""
    org, _ = await org_row(app, slug)
    if org is not None:
        await app.state.runtime.provisioner.remove(org_id=org.id, keep_data=False)
