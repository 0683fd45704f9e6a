"""``orgplane runner register|list|revoke`` against a real platform: a control plane served over
HTTP with the local provisioner and embedded routing (as ``make run``), the org's real instance
reached at the URL the control plane gives (``http://acme.localhost:PORT/``, dialled at loopback).

The CLI runs in a thread (``main([...])``, synchronous HTTP) while the server runs in the test's
event loop; ``XDG_CONFIG_HOME`` is in tmp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.cli.runners import loopback_for_localhost
from control_plane.users.service import create_user
from tests.reconciler.test_lifecycle_local import admin_headers, wait_phase
from tests.support.api import PASSWORD
from tests.support.cli import run_cli as cli
from tests.support.live import FAST_RECONCILER, serve_control_plane

pytestmark = pytest.mark.slow


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
async def platform(
    make_settings: Any, unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Any:
    """The platform with org ``acme`` (owner dev@example.com, member ann@example.com) running."""
    port = unused_tcp_port
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_PORT=str(port),
        ORGPLANE_PROVISIONER="local",
        ORGPLANE_EMBEDDED_ROUTING="true",
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    async with (
        serve_control_plane(settings, port) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as api,
    ):
        admin = await admin_headers(app, api)
        async with app.state.runtime.sessions() as db:
            await create_user(db, email="dev@example.com", password=PASSWORD)
            await create_user(db, email="ann@example.com", password=PASSWORD)
            await db.commit()
        body = {"name": "Acme", "slug": "acme", "plan": "team", "owner_email": "dev@example.com"}
        made = await api.post("/api/v1/orgs", headers=admin, json=body)
        assert made.status_code == 202, made.text
        await wait_phase(api, admin, "acme", "running")
        invite = await api.post(
            "/api/v1/orgs/acme/members",
            headers=admin,
            json={"email": "ann@example.com", "role": "member"},
        )
        assert invite.status_code in (200, 201), invite.text
        yield f"http://127.0.0.1:{port}", port


async def login_as(capsys: pytest.CaptureFixture[str], url: str, email: str) -> None:
    code, _, err = await cli(
        capsys, "login", "--url", url, "--email", email, "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err


async def beat(port: int, token: str) -> int:
    """A runner's heartbeat with ``token`` at acme's host, through the embedded edge."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        answer = await http.post(
            "/api/v1/runners/heartbeat",
            json={"status": "idle"},
            headers={"Host": f"acme.localhost:{port}", "Authorization": f"Bearer {token}"},
        )
    return answer.status_code


async def test_register_list_revoke_in_the_current_org(
    platform: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, port = platform
    await login_as(capsys, url, "dev@example.com")
    code, _, err = await cli(capsys, "runner", "list")
    assert (code, err) == (
        1,
        "orgplane: no current organization; run `orgplane switch SLUG` first\n",
    )
    assert (await cli(capsys, "switch", "acme"))[0] == 0

    code, out, err = await cli(capsys, "runner", "register", "build-1", "--label", "linux")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("ort_")
    assert "\n" not in token
    assert "shown only this once" in err
    assert token not in err
    # The runner side holds the token: the CLI kept no copy of it.
    kept = b"".join(p.read_bytes() for p in (tmp_path / "config").rglob("*") if p.is_file())
    assert token.encode() not in kept

    code, out, _ = await cli(capsys, "runner", "list")
    assert code == 0
    assert token not in out
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(r[1], r[2], r[3]) for r in rows] == [("build-1", "registered", "linux")]
    runner_id = rows[0][0]

    assert await beat(port, token) == 200  # the token works for its runner
    code, out, _ = await cli(capsys, "runner", "list")
    assert out.splitlines()[1].split()[2] == "idle"  # its own report
    assert "never" not in out.splitlines()[1]  # last seen now

    # A member may list but not register or revoke: the instance's refusal, shown as such.
    await login_as(capsys, url, "ann@example.com")
    assert (await cli(capsys, "switch", "acme"))[0] == 0
    code, out, _ = await cli(capsys, "runner", "list")
    assert code == 0
    assert "build-1" in out
    code, _, err = await cli(capsys, "runner", "revoke", runner_id)
    assert (code, err) == (
        1,
        "orgplane: acme: Only the organization's owners and admins may do this.\n",
    )
    assert await beat(port, token) == 200

    await login_as(capsys, url, "dev@example.com")
    assert (await cli(capsys, "switch", "acme"))[0] == 0
    code, out, _ = await cli(capsys, "runner", "revoke", runner_id)
    assert (code, out) == (0, f"revoked runner {runner_id} in acme\n")
    assert await beat(port, token) == 401  # revoked: unusable
    code, out, _ = await cli(capsys, "runner", "list")
    assert out.splitlines()[1].split()[2] == "revoked"
    code, _, err = await cli(capsys, "runner", "revoke", "no-such-runner")
    assert (code, err) == (1, "orgplane: acme: No such runner.\n")


def test_localhost_urls_are_dialled_at_loopback_with_their_host() -> None:
    assert loopback_for_localhost("http://acme.localhost:8080") == (
        "http://127.0.0.1:8080",
        {"Host": "acme.localhost:8080"},
    )
    assert loopback_for_localhost("https://acme.orgs.example.com") == (
        "https://acme.orgs.example.com",
        {},
    )
