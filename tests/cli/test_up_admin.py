"""``orgplane up`` honours ``ORGPLANE_ADMIN_EMAIL`` / ``ORGPLANE_ADMIN_PASSWORD``.

Seen failing before: ``up`` created ``admin@orgplane.localhost`` with a one-time password first,
so the server's own start-up found an admin and ignored both settings; logging in with them
answered 401.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.instance.processes import free_port, stop, wait_http
from tests.support.up import start_up

EMAIL, PASSWORD = "first.admin@example.com", "a-long-admin-password-42"


def test_up_creates_the_configured_admin(tmp_path: Path) -> None:
    port = free_port()
    proc = start_up(
        tmp_path / "up.log",
        ORGPLANE_DATA_DIR=str(tmp_path / "data"),
        ORGPLANE_PORT=str(port),
        ORGPLANE_RECONCILER_ENABLED="false",
        ORGPLANE_ADMIN_EMAIL=EMAIL,
        ORGPLANE_ADMIN_PASSWORD=PASSWORD,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz", proc=proc)
        login = httpx.post(url + "/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        assert login.status_code == 200, login.text
        default = httpx.post(
            url + "/api/v1/auth/login",
            json={"email": "admin@orgplane.localhost", "password": "x" * 16},
        )
        assert default.status_code == 401  # no second, default admin
    finally:
        stop(proc)
    printed = (tmp_path / "up.log").read_text()
    assert f"Log in as {EMAIL} with the password in ORGPLANE_ADMIN_PASSWORD" in printed
    assert "one-time password" not in printed
    assert PASSWORD not in printed
