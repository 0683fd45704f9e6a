"""Accessibility of every UI page: axe-core (pinned, from npm) run in Chromium on each page a
signed-out visitor, a platform admin, an org owner and a member can reach, failing on any
serious or critical violation (rule, targets and help URL printed).

The list of pages is checked against the app's route table: a GET route under ``/ui`` that is
neither visited here nor listed in :data:`NOT_PAGES` with a reason fails the test, so a page
added later is audited (or explicitly excused) from the start. States that are not routes of
their own (the sign-in's second step, a form with an error, the error page) are visited too.

One browser, one page per role; the contexts bypass the CSP so the audit script can be inlined
(``tests/support/axe.py``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest

from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.axe import Violation, audit, axe_script
from tests.support.live import serve_control_plane
from tests.support.mfa import code, enable_mfa, steady_step
from tests.support.oidc import REDIRECT_URI, register_client
from tests.support.services import chromium_binary, need
from tests.ui.browser import CHROMIUM_ARGS, free_port, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


#: GET routes under /ui that are not pages, and why.
NOT_PAGES = {
    "/ui/orgs/{org_ref:str}/instance.json": "JSON for the org page's live refresh, not a page",
    "/ui/static/{file_path:path}": "static files (the stylesheet and script), not pages",
    "/ui/auth/sso/{slug:str}/start": "a redirect to the identity provider, not a page",
    "/ui/auth/sso/{slug:str}/callback": "a redirect back into the UI, or the login page "
    "(audited) with the refusal",
}


@dataclass(frozen=True)
class Visit:
    """One page to audit: who opens it, which route it is (None: a state, not a route), the
    URL, and the HTTP status it answers with."""

    role: str
    route: str | None
    url: str
    status: int = 200
    label: str = ""


def ui_get_routes(app: Any) -> set[str]:
    """The path templates of every GET route under /ui in the app's route table."""
    return {
        route.path
        for route in app.routes
        if route.path.startswith("/ui")
        for handler in getattr(route, "route_handlers", [])
        if "GET" in (handler.http_methods or ())
    }


@pytest.fixture
def db_backend() -> str:
    """One real server on SQLite is enough here; the API tests cover PostgreSQL."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any) -> AsyncIterator[tuple[str, Any, dict[str, str]]]:
    """The control plane's URL, its app, and the facts the visits need: an org ``acme`` owned
    by olga@ with ann@ as a member, a feature rule, a third-party OAuth client's authorization
    URL, and mo@ who signs in with TOTP."""
    port = free_port()
    settings = make_settings(
        ORGPLANE_PORT=str(port), ORGPLANE_DEPLOYMENT_ID=f"axe-{uuid.uuid4().hex[:8]}"
    )
    base = f"http://127.0.0.1:{port}"
    async with serve_control_plane(settings, port) as app:
        async with app.state.runtime.sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True, name="Ops"
            )
            for email, name in (("olga", "Olga"), ("ann", "Ann"), ("mo", "Mo")):
                await create_user(db, email=f"{email}@example.com", password=PASSWORD, name=name)
            await db.commit()
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            facts = await _seed(http)
        yield base, app, facts


async def _bearer(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    answer = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _seed(http: httpx.AsyncClient) -> dict[str, str]:
    admin = await _bearer(http, "ops@example.com")
    body = {"name": "Acme Corp", "slug": "acme", "owner_email": "olga@example.com"}
    created = await http.post("/api/v1/orgs", headers=admin, json=body)
    assert created.status_code == 202, created.text
    member = {"email": "ann@example.com", "role": "member"}
    added = await http.post("/api/v1/orgs/acme/members", headers=admin, json=member)
    assert added.status_code == 201, added.text
    rule = {"description": "Beta search", "exclusive_org_ids": [created.json()["id"]]}
    put = await http.put("/api/v1/features/beta", headers=admin, json=rule)
    assert put.status_code == 200, put.text
    client = await register_client(http, admin, first_party=False)
    # enable_mfa only posts: the live server's httpx client does what the test client does.
    enrolled = await enable_mfa(cast(Any, http), await _bearer(http, "mo@example.com"))
    verifier = uuid.uuid4().hex * 2
    challenge = hashlib.sha256(verifier.encode()).digest()
    query = {
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": base64.urlsafe_b64encode(challenge).rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    return {"authorize": "/oauth/authorize?" + urlencode(query), "totp": enrolled.secret}


def visits(facts: dict[str, str]) -> list[Visit]:
    """Every page, by role, in the order the browser opens them."""
    anyone = [
        Visit("visitor", "/ui/login", "/ui/login"),
        Visit("visitor", "/ui/password/forgot", "/ui/password/forgot"),
        Visit("visitor", "/ui/password/reset", "/ui/password/reset"),
        Visit("visitor", "/ui/verify-email", "/ui/verify-email"),
    ]
    admin = [
        Visit("admin", "/ui", "/ui/"),
        Visit("admin", "/ui/orgs/new", "/ui/orgs/new"),
        Visit("admin", "/ui/orgs/{org_ref:str}", "/ui/orgs/acme"),
        Visit("admin", "/ui/orgs/{org_ref:str}/members", "/ui/orgs/acme/members"),
        Visit("admin", "/ui/orgs", "/ui/orgs"),
        Visit("admin", "/ui/admin/users", "/ui/admin/users"),
        Visit("admin", "/ui/admin/audit", "/ui/admin/audit"),
        Visit("admin", "/ui/admin/keys", "/ui/admin/keys"),
        Visit("admin", "/ui/features", "/ui/features"),
        Visit(
            "admin",
            "/ui/features",
            "/ui/features?user=ann%40example.com&org=acme",
            label="feature rules, explained",
        ),
        Visit("admin", "/ui/account/password", "/ui/account/password"),
        Visit("admin", "/ui/account/mfa", "/ui/account/mfa"),
        Visit("admin", None, "/ui/orgs/no-such-org", 404, "the error page"),
    ]
    owner = [
        Visit("owner", "/ui/orgs", "/ui/orgs"),
        Visit("owner", "/ui/orgs/{org_ref:str}", "/ui/orgs/acme"),
        Visit("owner", "/ui/orgs/{org_ref:str}/members", "/ui/orgs/acme/members"),
        Visit("owner", "/ui/account/mfa", "/ui/account/mfa"),
    ]
    member = [
        Visit("member", "/ui/orgs", "/ui/orgs"),
        Visit("member", "/ui/orgs/{org_ref:str}", "/ui/orgs/acme"),
        Visit("member", "/ui/invites/accept", "/ui/invites/accept"),
        Visit("member", "/ui/oauth/authorize", facts["authorize"], label="consent"),
    ]
    return anyone + admin + owner + member


async def _states(page: Any, script: Path, totp: str) -> list[Violation]:
    """Pages that are states, not routes: a refused sign-in, the second factor's step, and the
    MFA page of an account that has TOTP on."""
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill("ops@example.com")
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    found = await audit(page, script, "visitor: sign-in refused")
    await sign_in(page, "mo@example.com")
    found += await audit(page, script, "visitor: sign-in, second step (TOTP)")
    steady_step()
    await page.get_by_label("One-time code").fill(code(totp))
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url("**/ui/orgs")
    await page.goto("/ui/account/mfa")
    return found + await audit(page, script, "mo (TOTP on): /ui/account/mfa")


async def test_every_page_has_no_serious_accessibility_violation(
    live: tuple[str, Any, dict[str, str]],
) -> None:
    need("Chromium", chromium_binary() is not None)
    script = axe_script()
    need("axe-core from npm (tests/support/npm.py)", script is not None)
    assert script is not None
    from playwright.async_api import async_playwright

    base, app, facts = live
    plan = visits(facts)
    routes = ui_get_routes(app)
    unlisted = routes - {v.route for v in plan} - NOT_PAGES.keys()
    assert not unlisted, f"UI GET routes neither audited nor listed in NOT_PAGES: {unlisted}"
    assert NOT_PAGES.keys() <= routes, "NOT_PAGES names a route the app no longer has"

    violations: list[Violation] = []
    emails = {"admin": "ops", "owner": "olga", "member": "ann"}
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            pages: dict[str, Any] = {}
            for role in ("visitor", "admin", "owner", "member"):
                context = await chromium.new_context(base_url=base, bypass_csp=True)
                pages[role] = page = await context.new_page()
                page.set_default_timeout(20_000)
                if role in emails:
                    await sign_in(page, f"{emails[role]}@example.com")
            for visit in plan:
                page = pages[visit.role]
                answer = await page.goto(visit.url)
                assert answer is not None, visit
                assert answer.status == visit.status, (visit, answer.status)
                assert "/ui/login" not in page.url or visit.role == "visitor", (visit, page.url)
                label = f"{visit.role}: {visit.label or visit.url}"
                violations += await audit(page, script, label)
            violations += await _states(pages["visitor"], script, facts["totp"])
        finally:
            await chromium.close()
    assert not violations, "serious or critical accessibility violations:\n" + "\n".join(
        map(str, violations)
    )


async def test_the_route_table_reader_finds_the_ui_pages(client: Any) -> None:
    """What the completeness check above relies on: every route it visits is read from the
    app's table, and the API's GET routes are not."""
    routes = ui_get_routes(client.app)
    planned = {v.route for v in visits({"authorize": "/oauth/authorize"}) if v.route}
    assert planned | NOT_PAGES.keys() <= routes
    assert all(route.startswith("/ui") for route in routes)


BROKEN_PAGE = (
    "<!doctype html><html><head><title>t</title></head><body>"
    '<main><input type="text"><img src="x.png">'
    '<p style="color:#bbb;background:#fff">faint</p></main></body></html>'
)


async def test_the_audit_reports_serious_violations_and_needs_the_csp_bypass() -> None:
    """The audit can fail: a page without lang, labels, alt text or contrast is reported
    rule by rule; and under the UI's CSP, without ``bypass_csp``, axe does not load and the
    audit says so instead of passing."""
    need("Chromium", chromium_binary() is not None)
    script = axe_script()
    need("axe-core from npm (tests/support/npm.py)", script is not None)
    assert script is not None
    from playwright.async_api import async_playwright

    async def serve(route: Any) -> None:
        headers = {"Content-Security-Policy": "script-src 'self'"}
        await route.fulfill(status=200, content_type="text/html", body=BROKEN_PAGE, headers=headers)

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            for bypass in (True, False):
                context = await chromium.new_context(bypass_csp=bypass)
                page = await context.new_page()
                await page.route("http://axe.test/**", serve)
                await page.goto("http://axe.test/")
                if not bypass:
                    with pytest.raises(AssertionError, match="axe-core did not load"):
                        await audit(page, script, "with the CSP")
                    continue
                found = await audit(page, script, "broken")
                rules = {v.rule: v for v in found}
                assert {"html-has-lang", "image-alt", "label", "color-contrast"} <= rules.keys()
                assert rules["image-alt"].targets == ["img"]
                assert rules["label"].help_url.startswith("https://dequeuniversity.com/rules/axe/")
                assert "broken: [critical] image-alt" in str(rules["image-alt"])
        finally:
            await chromium.close()
