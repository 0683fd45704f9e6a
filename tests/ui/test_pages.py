"""The UI over plain HTTP (no JavaScript): session cookies, CSRF, headers, escaping, forms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from litestar.testing import AsyncTestClient

from control_plane.db.models import Org, UsageSample
from control_plane.orgs.listing import PHASES
from control_plane.ui.present import PHASE_TONE
from tests.support.api import add_user, direct_db, login
from tests.ui.forms import submit, ui_login

Client = AsyncTestClient[Any]


async def test_login_sets_httponly_session_cookies_and_headers(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    first = await client.get("/ui/orgs", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/login?next=%2Fui%2Forgs"

    page = await client.get("/ui/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert 'for="f-email"' in page.text
    assert 'for="f-password"' in page.text

    answer = await ui_login(client, "root@example.com")
    assert answer.headers["location"] == "/ui/"
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    assert "httponly" in cookies["orgplane_session"]
    assert "samesite=lax" in cookies["orgplane_session"]
    assert "path=/;" in cookies["orgplane_session"] + ";"
    assert "httponly" in cookies["orgplane_refresh"]
    assert "path=/ui" in cookies["orgplane_refresh"]
    assert "secure" not in cookies["orgplane_session"]  # plain HTTP, ORGPLANE_COOKIE_SECURE off

    dashboard = await client.get("/ui/")
    assert dashboard.status_code == 200
    assert "Platform dashboard" in dashboard.text
    assert "root@example.com" in dashboard.text
    # The API accepts the same cookie (the autocomplete script relies on it).
    assert (await client.get("/api/v1/orgs/lookup?q=x")).status_code == 200


async def test_wrong_password_shows_one_message(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    answer = await submit(
        client,
        "/ui/login",
        "/ui/login",
        email="root@example.com",
        password="not the password",
        next="/ui/",
    )
    assert answer.status_code == 401
    assert "The email or password is not correct." in answer.text
    assert "orgplane_session" not in answer.headers.get("set-cookie", "")


async def test_form_post_without_csrf_token_is_refused(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    missing = await client.post("/ui/orgs/new", data={"name": "Acme", "slug": "acme"})
    assert missing.status_code == 403
    forged = await client.post(
        "/ui/orgs/new", data={"name": "Acme", "slug": "acme", "_csrf_token": "forged"}
    )
    assert forged.status_code == 403
    logout = await client.post("/ui/logout", follow_redirects=False)
    assert logout.status_code == 403
    async with direct_db(client) as db:
        assert await db.get(Org, "acme") is None
        from sqlmodel import select

        assert (await db.exec(select(Org))).all() == []
    # Bearer API clients are not asked for a CSRF token.
    headers = await login(client, "root@example.com")
    made = await client.post("/api/v1/orgs", json={"name": "Acme", "slug": "acme"}, headers=headers)
    assert made.status_code == 202, made.text


async def test_org_names_are_escaped_everywhere(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    headers = await login(client, "root@example.com")
    evil = "<script>alert(1)</script>"
    made = await client.post("/api/v1/orgs", json={"name": evil, "slug": "evil"}, headers=headers)
    assert made.status_code == 202, made.text
    await ui_login(client, "root@example.com")
    for path in ("/ui/", "/ui/orgs", "/ui/orgs/evil", "/ui/orgs/evil/members"):
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert evil not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path


async def test_create_org_shows_problems_beside_fields(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    bad = await submit(client, "/ui/orgs/new", "/ui/orgs/new", name="Acme", slug="-Bad-")
    assert bad.status_code == 400
    assert 'id="e-slug"' in bad.text
    assert 'aria-invalid="true"' in bad.text
    assert 'value="Acme"' in bad.text  # what was typed stays in the form
    blank = await submit(client, "/ui/orgs/new", "/ui/orgs/new", name="", slug="acme")
    assert 'id="e-name"' in blank.text
    made = await submit(client, "/ui/orgs/new", "/ui/orgs/new", name="Acme", slug="acme")
    assert made.status_code == 303
    assert made.headers["location"] == "/ui/orgs/acme?done=created"
    taken = await submit(client, "/ui/orgs/new", "/ui/orgs/new", name="Other", slug="acme")
    assert taken.status_code == 400
    assert 'id="e-slug"' in taken.text
    assert "is taken" in taken.text


async def test_expired_session_is_refreshed_transparently(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    old_refresh = client.cookies.get("orgplane_refresh")
    client.cookies.set("orgplane_session", "not-a-token")
    page = await client.get("/ui/orgs")
    assert page.status_code == 200
    assert "My organizations" in page.text
    set_cookies = page.headers.get_list("set-cookie")
    assert any(c.startswith("orgplane_session=ey") for c in set_cookies)
    assert client.cookies.get("orgplane_refresh") != old_refresh


async def test_logout_revokes_the_refresh_token(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    refresh = client.cookies.get("orgplane_refresh")
    out = await submit(client, "/ui/orgs", "/ui/logout")
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login"
    assert client.cookies.get("orgplane_session") is None
    # The old refresh token no longer opens a session.
    client.cookies.set("orgplane_refresh", str(refresh), path="/ui")
    again = await client.get("/ui/orgs", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/ui/login")


async def test_members_see_their_orgs_not_others(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    await add_user(client, "ann@example.com")
    headers = await login(client, "root@example.com")
    for slug in ("acme", "globex"):
        made = await client.post(
            "/api/v1/orgs",
            json={
                "name": slug.title(),
                "slug": slug,
                "owner_email": "ann@example.com" if slug == "acme" else None,
            },
            headers=headers,
        )
        assert made.status_code == 202, made.text
    await ui_login(client, "ann@example.com")
    start = await client.get("/ui/", follow_redirects=False)
    assert start.headers["location"] == "/ui/orgs"  # only staff get the dashboard
    mine = await client.get("/ui/orgs")
    assert "Acme" in mine.text
    assert "Globex" not in mine.text
    assert ">owner<" in mine.text
    other = await client.get("/ui/orgs/globex")
    assert other.status_code == 404
    assert "No such organization." in other.text
    assert other.headers["content-type"].startswith("text/html")
    assert (await client.get("/ui/admin/users")).status_code == 403


async def test_open_sends_a_member_to_the_instances_sign_in(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    await submit(client, "/ui/orgs/new", "/ui/orgs/new", name="Acme", slug="acme")
    opened = await submit(client, "/ui/orgs", "/ui/orgs/acme/open")
    assert opened.status_code == 303
    assert opened.headers["cache-control"] == "no-store"
    target = urlsplit(opened.headers["location"])
    # No token anywhere in the URL: the instance signs the browser in through the control plane.
    assert (target.scheme, target.netloc, target.path, target.query, target.fragment) == (
        "http",
        "acme.localhost",
        "/auth/login",
        "",
        "",
    )


async def test_dashboard_counts_phases_and_draws_usage(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    await submit(client, "/ui/orgs/new", "/ui/orgs/new", name="Acme", slug="acme")
    async with direct_db(client) as db:
        from sqlmodel import select

        org = (await db.exec(select(Org).where(Org.slug == "acme"))).one()
        now = datetime.now(UTC)
        db.add(
            UsageSample(
                org_id=org.id, bucket=now.replace(minute=0, second=0, microsecond=0), requests=42
            )
        )
        await db.commit()
    page = await client.get("/ui/")
    assert "acme, last 24 h: 42 requests" in page.text
    assert '<span class="badge info">pending</span> <strong>1</strong>' in page.text
    filtered = await client.get("/ui/?phase=running")
    assert "No organizations match." in filtered.text
    detail = await client.get("/ui/orgs/acme?range=7d")
    assert "Requests per hour, last 168 h: 42 requests in total" in detail.text


def test_every_phase_has_a_badge_tone() -> None:
    assert set(PHASE_TONE) == set(PHASES)
