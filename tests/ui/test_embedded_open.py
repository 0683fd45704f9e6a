"""A newcomer's first click: ``orgplane up`` (what ``make run`` runs, with its own settings: SQLite,
the local provisioner, memory stores, no Traefik), sign in with the printed one-time password,
create an org in the UI, click "Open", and the org's instance answers at
``http://{slug}.localhost:PORT/``, signed in, in the same Chromium, which resolves
``*.localhost`` to loopback by itself. Only the data directory, the port and the deployment id
(so the test's instances meet no one else's) differ from ``make run``.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioners.base import ProvisionerOptions
from provisioners.local import LocalProvisioner
from tests.instance.processes import free_port, stop, wait_http
from tests.support.up import start_up
from tests.ui.test_browser import browser, shot

__all__ = ["browser"]  # the Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD_LINE = re.compile(r"Log in as (\S+) with the one-time password: (\S+)")


def printed_login(
    log: Path, proc: subprocess.Popen[bytes], *, timeout: float = 60
) -> tuple[str, str]:
    """The admin email and one-time password ``orgplane up`` printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = PASSWORD_LINE.search(log.read_text(errors="replace"))
        if found:
            return found.group(1), found.group(2)
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.2)
    raise AssertionError(f"no one-time password printed:\n{log.read_text(errors='replace')}")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, int, str, str, Path]]:
    """``orgplane up`` in a process of its own: (base URL, port, email, password, its log)."""
    port = free_port()
    data = tmp_path / "data"
    deployment = f"up-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "up.log"
    proc = start_up(
        log, ORGPLANE_DATA_DIR=str(data), ORGPLANE_PORT=str(port), ORGPLANE_DEPLOYMENT_ID=deployment
    )
    try:
        email, password = printed_login(log, proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz", proc=proc)
        yield url, port, email, password, log
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


async def test_open_from_make_run_reaches_the_instance(platform: Any, browser: Any) -> None:
    from playwright.async_api import expect

    base, port, email, password, log = platform
    assert f"Orgs are reached at http://{{slug}}.localhost:{port}/" in log.read_text()
    context = await browser.new_context(base_url=base)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await page.goto("/ui/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/ui/(orgs)?$"))

    await page.get_by_role("link", name="New organization").click()
    await page.get_by_label("Name").fill("Acme Corp")
    await page.get_by_label("Slug").fill("acme")
    await page.get_by_role("button", name="Create organization").click()
    await page.wait_for_url(re.compile(r"/ui/orgs/acme\?done=created$"))
    await expect(page.locator("#phase-badge")).to_have_text("running", timeout=120_000)

    reason = page.get_by_label("Reason for support access")
    if await reason.count():
        await reason.fill("first look at the new org")
    await page.get_by_role("button", name="Open Acme Corp").click()
    # The instance signs the browser in through the control plane and shows who it is.
    await page.wait_for_url(f"http://acme.localhost:{port}/")
    await expect(page.locator("#user")).to_have_text(email)  # no name: the email stands in
    await expect(page.locator("#role")).to_have_text("owner")
    await shot(page, "embedded-01-open")
    await context.close()
