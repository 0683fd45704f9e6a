"""Shared pieces of the UI's Chromium tests: launch flags, a port in this suite's range, and
signing in through the login form."""

from __future__ import annotations

import socket
from typing import Any

from tests.support.api import PASSWORD

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
#: Ports the accessibility and feature-rules browser tests listen on (127.0.0.1 only).
PORTS = range(47900, 48000)


def free_port() -> int:
    """A port of :data:`PORTS` that nothing listens on now."""
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {PORTS}")


async def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    """Submit the login form on ``page`` (whose context has the control plane as base URL)."""
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
