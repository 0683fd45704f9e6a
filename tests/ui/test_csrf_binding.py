"""The UI's CSRF token is bound to the sign-in, and writes from another origin are refused.

Each session is a real sign-in through the login form; the test keeps each one's cookies and
sends them itself, as two browsers would (the client's own jar is emptied between them).
"""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import Org
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.ui.forms import CSRF_FIELD, ui_login

Client = AsyncTestClient[Any]
NEW_ORG = "/ui/orgs/new"


async def sign_in(client: Client, email: str) -> dict[str, str]:
    """A fresh session of ``email``: its cookies, as the browser holds them."""
    client.cookies.clear()
    await ui_login(client, email)
    cookies = {c.name: c.value for c in client.cookies.jar}
    client.cookies.clear()
    return cookies


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


async def form_token(client: Client, cookies: dict[str, str]) -> str:
    page = await client.get(NEW_ORG, headers=cookie_header(cookies))
    assert page.status_code == 200, page.text
    found = CSRF_FIELD.search(page.text)
    assert found
    return found.group(1)


async def new_org(
    client: Client, cookies: dict[str, str], token: str, slug: str, **headers: str
) -> Any:
    return await client.post(
        NEW_ORG,
        data={"name": slug, "slug": slug, "_csrf_token": token},
        headers={**cookie_header(cookies), **headers},
        follow_redirects=False,
    )


async def orgs(client: Client) -> list[str]:
    async with direct_db(client) as db:
        return sorted(o.slug for o in (await db.exec(select(Org))).all())


async def test_a_csrf_token_from_another_session_is_refused(client: Client) -> None:
    """A planted token and cookie pair of the attacker's own session (a page on a sibling
    subdomain can set a cookie for the platform's domain) does not pass in the victim's session,
    nor does one of another sign-in of the same user; each session's own token does.

    Failed on the old code: Litestar's double-submit cookie only checked that the form's token
    matched the cookie, so the attacker's pair created an org as the victim (303)."""
    await add_user(client, "attacker@example.com")
    await add_user(client, "victim@example.com")
    attacker = await sign_in(client, "attacker@example.com")
    victim = await sign_in(client, "victim@example.com")
    victim_elsewhere = await sign_in(client, "victim@example.com")
    planted_token = await form_token(client, attacker)
    planted = {**victim, "orgplane_csrf": attacker["orgplane_csrf"]}
    refused = await new_org(client, planted, planted_token, "planted")
    assert_problem(refused, 403, "csrf_session_mismatch")
    other = await form_token(client, victim_elsewhere)
    crossed = {**victim, "orgplane_csrf": victim_elsewhere["orgplane_csrf"]}
    assert_problem(await new_org(client, crossed, other, "crossed"), 403, "csrf_session_mismatch")
    assert await orgs(client) == []
    own = await new_org(client, victim, await form_token(client, victim), "own")
    assert own.status_code == 303, own.text
    assert await orgs(client) == ["own"]


async def test_writes_from_another_origin_are_refused(client: Client) -> None:
    """Failed on the old code: a form posted from http://evil.example (with a valid token, as
    a planted cookie would give) created the org."""
    await add_user(client, "alice@example.com")
    alice = await sign_in(client, "alice@example.com")
    token = await form_token(client, alice)
    for header, value in (
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Origin", "https://127.0.0.1:8080"),  # another scheme is another origin
        ("Referer", "http://evil.example/attack.html"),
    ):
        answer = await new_org(client, alice, token, "evil", **{header: value})
        assert_problem(answer, 403, "cross_origin_request")
    login_page = await client.get("/ui/login")  # a valid pre-session token and cookie
    found = CSRF_FIELD.search(login_page.text)
    assert found
    forged_login = await client.post(
        "/ui/login",
        data={"email": "alice@example.com", "password": PASSWORD, "_csrf_token": found.group(1)},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert_problem(forged_login, 403, "cross_origin_request")  # login CSRF
    client.cookies.clear()
    assert await orgs(client) == []
    same = {"Origin": "http://127.0.0.1:8080", "Referer": "http://evil.example/"}
    assert (await new_org(client, alice, token, "same", **same)).status_code == 303
    by_referer = {"Referer": "http://127.0.0.1:8080/ui/orgs/new"}
    assert (await new_org(client, alice, token, "referred", **by_referer)).status_code == 303
    # Bearer API calls are not the UI's: no Origin check, no CSRF token.
    headers = {**(await login(client, "alice@example.com")), "Origin": "http://evil.example"}
    made = await client.post(
        "/api/v1/orgs", json={"name": "Bearer", "slug": "bearer"}, headers=headers
    )
    assert made.status_code == 202, made.text
    assert await orgs(client) == ["bearer", "referred", "same"]
