"""Browser sign-in into org instances, end to end: ``orgplane up`` (embedded routing, the local
provisioner, real instances) with the real Redis, so revocations reach the instances, and
Chromium. A member signs in to the control-plane UI, clicks "Open" on org A and lands signed in
on A's host (``http://org-a.localhost:PORT/``), goes back, opens B and is signed in there; C, whose
member they are not, gives them no session; the session cookie is host-only; signing out of the
control plane ends the instance sessions; a callback replayed is refused; and no token appears
in any URL the browser visited. Then ``orgplane login --sso --no-browser``, its printed URL
followed by Chromium, ends with a CLI session that works.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioners.base import ProvisionerOptions
from provisioners.local import LocalProvisioner
from tests.instance.processes import child_env, stop, wait_http
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.up import start_up
from tests.ui.test_browser import browser, shot
from tests.ui.test_embedded_open import printed_login

__all__ = ["browser"]  # the Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"
#: Anything shaped like a JWT, or an OAuth token parameter.
TOKEN_IN_URL = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.|access_token|id_token|refresh_token")


def port_in_range() -> int:
    """A free port of this test's range (47700-47799)."""
    for port in range(47700, 47800):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 47700-47799")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, int, str, str]]:
    """``orgplane up`` with Redis (per-org users): (base URL, port, admin email, password)."""
    need("Redis", redis_available())
    port = port_in_range()
    data = tmp_path / "data"
    deployment = f"si-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "up.log"
    proc = start_up(
        log,
        ORGPLANE_DATA_DIR=str(data),
        ORGPLANE_PORT=str(port),
        ORGPLANE_DEPLOYMENT_ID=deployment,
        ORGPLANE_REDIS_URL=REDIS_URL,
    )
    try:
        email, password = printed_login(log, proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz", proc=proc)
        yield url, port, email, password
    finally:
        stop(proc)
        import asyncio

        local = LocalProvisioner(
            options=ProvisionerOptions(deployment_id=deployment, data_root=data)
        )

        async def remove_all() -> None:
            for status in await local.list():
                await local.remove(org_id=status.org_id, keep_data=False)

        asyncio.run(remove_all())


def bearer(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    answer = http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def set_up_orgs(base: str, email: str, password: str) -> None:
    """Orgs org-a, org-b and org-c (the admin owns all three), and bob, a member of org-a and
    org-b only."""
    with httpx.Client(base_url=base, timeout=30) as http:
        admin = bearer(http, email, password)
        for slug in ("org-a", "org-b", "org-c"):
            made = http.post("/api/v1/orgs", json={"name": f"Org {slug[-1].upper()}", "slug": slug},
                             headers=admin)  # fmt: skip
            assert made.status_code == 202, made.text
        bob = http.post("/api/v1/users", json={"email": "bob@example.com", "password": PASSWORD,
                                               "name": "Bob"}, headers=admin)  # fmt: skip
        assert bob.status_code == 201, bob.text
        bob_auth = bearer(http, "bob@example.com", PASSWORD)
        for slug in ("org-a", "org-b"):
            body = {"email": "bob@example.com", "role": "member"}
            invite = http.post(f"/api/v1/orgs/{slug}/invites", json=body, headers=admin)
            assert invite.status_code == 201, invite.text
            accepted = http.post("/api/v1/invites/accept", json={"token": invite.json()["token"]},
                                 headers=bob_auth)  # fmt: skip
            assert accepted.status_code == 200, accepted.text
        deadline = time.monotonic() + 180
        for slug in ("org-a", "org-b", "org-c"):
            while True:
                phase = http.get(f"/api/v1/orgs/{slug}", headers=admin).json().get("phase")
                if phase == "running":
                    break
                assert time.monotonic() < deadline, f"org {slug} is {phase}"
                time.sleep(0.5)


async def test_open_signs_in_to_each_org_and_nowhere_else(platform: Any, browser: Any) -> None:
    from playwright.async_api import expect

    base, port, email, password = platform
    set_up_orgs(base, email, password)
    context = await browser.new_context(base_url=base)
    visited: list[str] = []
    context.on("request", lambda request: visited.append(request.url))
    page = await context.new_page()
    page.set_default_timeout(20_000)
    page.on("framenavigated", lambda frame: visited.append(frame.url))

    await page.goto("/ui/login")
    await page.get_by_label("Email").fill("bob@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/ui/(orgs)?$"))
    await page.goto("/ui/orgs")
    assert await page.get_by_role("button", name="Open Org C").count() == 0  # not bob's

    callbacks: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: callbacks.append(frame.url) if "/auth/callback" in frame.url else None,
    )
    await page.get_by_role("button", name="Open Org A").click()
    await page.wait_for_url(f"http://org-a.localhost:{port}/")
    await expect(page.locator("#user")).to_have_text("Bob")
    await expect(page.locator("#email")).to_have_text("bob@example.com")
    await expect(page.locator("#role")).to_have_text("member")
    await shot(page, "instance-signed-in-a")

    await page.go_back()
    await page.goto("/ui/orgs")
    await page.get_by_role("button", name="Open Org B").click()
    await page.wait_for_url(f"http://org-b.localhost:{port}/")
    await expect(page.locator("#org-name")).to_have_text(re.compile("Org B|org-b"))
    await expect(page.locator("#email")).to_have_text("bob@example.com")

    # Host-only, HttpOnly, SameSite=Lax cookies: one per org host, none on the control plane.
    cookies = [c for c in await context.cookies() if c["name"] == "orgplane_org_session"]
    assert sorted(c["domain"] for c in cookies) == ["org-a.localhost", "org-b.localhost"], cookies
    assert all(c["httpOnly"] and c["sameSite"] == "Lax" and c["path"] == "/" for c in cookies)

    # C: bob is no member, so the control plane gives its instance no token for him.
    answer = await page.goto(f"http://org-c.localhost:{port}/")
    assert answer is not None
    assert answer.status == 403, await answer.text()
    assert "sign_in_refused" in await answer.text()
    assert not [c for c in await context.cookies(f"http://org-c.localhost:{port}/")
                if c["name"] == "orgplane_org_session"]  # fmt: skip

    # The callback of A replayed: its state was spent, nothing opens.
    replay = await page.goto(callbacks[0])
    assert replay is not None
    assert replay.status == 400
    assert "sign_in_state_invalid" in await replay.text()

    # Still signed in on A; signing out of the control plane ends the instance sessions.
    await page.goto(f"http://org-a.localhost:{port}/")
    await expect(page.locator("#email")).to_have_text("bob@example.com")
    await page.goto("/ui/")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/ui/login"))
    deadline = time.monotonic() + 10
    while True:
        await page.goto(f"http://org-a.localhost:{port}/")
        if "/ui/login" in page.url:  # the instance sent the browser to sign in again
            break
        assert time.monotonic() < deadline, page.url
        time.sleep(0.3)

    leaked = [url for url in visited if TOKEN_IN_URL.search(url)]
    assert not leaked, leaked
    assert any("/auth/callback?" in url for url in visited)
    await context.close()


async def test_cli_login_sso_through_the_browser(
    platform: Any, browser: Any, tmp_path: Path
) -> None:
    base, _, email, password = platform
    env = child_env(XDG_CONFIG_HOME=str(tmp_path / "config"))
    cli = [sys.executable, "-m", "control_plane.cli.main"]
    proc = subprocess.Popen(
        [
            *cli,
            "login",
            "--sso",
            "--no-browser",
            "--url",
            base,
            "--timeout",
            "60",
            "--port",
            str(port_in_range()),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "Open this URL in a browser to log in:"
        url = proc.stdout.readline().strip()
        assert url.startswith(f"{base}/oauth/authorize?"), url
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(20_000)
        await page.goto(url)
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/callback\?"))
        assert "signed in to the orgplane CLI" in await page.locator("body").inner_text()
        await context.close()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"logged in to {base} as {email}" in out
    whoami = subprocess.run([*cli, "whoami"], env=env, capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.startswith(f"{email} (platform admin) at {base}")
    assert os.path.exists(tmp_path / "config")
