"""The shipped ``compose/compose.yaml``, every service up (Traefik included), used through Traefik.

As a user does it: fill in ``.env``, ``docker-compose -p <project> up -d``, log in and create an
org through Traefik at the control plane's host, use the org at its own host, then what a platform
admin does: hibernate it (its first request through Traefik wakes it and is served) and suspend
it (Traefik shows the control plane's page). Then ``docker-compose down -v``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.compose import REDIS_IMAGE, TRAEFIK_IMAGE, ComposeProject
from tests.e2e.images import build_images, missing_images
from tests.support.services import need
from tests.support.traefik import through
from tests.support.wait import WaitTimeout, eventually

pytestmark = [pytest.mark.slow, pytest.mark.docker]

UP_TIMEOUT = 180.0


@pytest.fixture
def project(docker_engine: Any, tmp_path: Path) -> Iterator[ComposeProject]:
    if missing_images(docker_engine, (TRAEFIK_IMAGE, REDIS_IMAGE)):
        try:
            build_images("traefik", "redis")
        except Exception as exc:
            need(f"the Traefik and Redis images (building them failed: {exc})", False)
        missing = missing_images(docker_engine, (TRAEFIK_IMAGE, REDIS_IMAGE))
        need(f"the images {', '.join(missing)} (redis-server on this host?)", not missing)
    run = ComposeProject(
        client=docker_engine, run_id=f"cu{uuid.uuid4().hex[:10]}", directory=tmp_path / "compose"
    )
    run.write_env()
    try:
        yield run
    finally:
        run.down()


async def phase_of(user: httpx.AsyncClient, cp: str, auth: dict[str, str], org: str) -> str:
    answer = await user.get(f"{cp}/api/v1/orgs/{org}/instance", headers=auth)
    return str(answer.json().get("phase")) if answer.status_code == 200 else ""


async def test_compose_up_through_traefik(project: ComposeProject) -> None:
    project.compose("up", "-d", timeout=UP_TIMEOUT)
    # Every service of the file but the optional socket proxy (profile `socket-proxy`).
    assert project.service_states() == {
        "traefik": "running",
        "redis": "running",
        "migrate": "exited 0",
        "control-plane": "running",
    }
    cp = f"http://{project.base_domain}"

    async with through(project.traefik(), timeout=60) as user:

        async def ready() -> bool:
            try:
                return (await user.get(f"{cp}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            await eventually(ready, what="the control plane through Traefik", timeout=UP_TIMEOUT)
        except WaitTimeout as exc:
            logs = f"{project.logs('control-plane')}\n{project.logs('traefik')}"
            raise WaitTimeout(f"{exc}\n{logs}") from None

        login = await user.post(
            f"{cp}/api/v1/auth/login",
            json={"email": project.admin_email, "password": project.admin_password},
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        made = await user.post(
            f"{cp}/api/v1/orgs", headers=auth, json={"name": "Acme", "slug": "acme"}
        )
        assert made.status_code == 202, made.text
        org_id = made.json()["id"]

        async def running() -> bool:
            return await phase_of(user, cp, auth, org_id) == "running"

        await eventually(running, what="acme running", timeout=120, interval=0.3)
        exchanged = await user.post(
            f"{cp}/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": auth["Authorization"].split()[1],
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": "org:acme",
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        org = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        sessions = f"http://acme.{project.base_domain}/api/v1/sessions"

        async def routed() -> httpx.Response | None:
            answer = await user.get(sessions, headers=org)
            return answer if answer.status_code == 200 else None

        await eventually(routed, what="acme's host through Traefik", interval=0.2)
        created = await user.post(sessions, headers=org, json={"title": "compose-notes"})
        assert created.status_code == 201, created.text

        # Hibernated by the platform admin; the first request right after it wakes the org and,
        # following the 307s, is answered by the woken instance: the container stopped only once
        # Traefik routed the org's host to the wake endpoint, so no request met it stopped.
        slept = await user.post(
            f"{cp}/api/v1/orgs/{org_id}/instance/actions",
            headers=auth,
            json={"action": "hibernate"},
        )
        assert slept.status_code == 202, slept.text

        async def hibernated() -> bool:
            return await phase_of(user, cp, auth, org_id) == "hibernated"

        await eventually(hibernated, what="acme hibernated", timeout=60, interval=0.1)
        # Stopped after the control plane's probe through Traefik reached the wake endpoint
        # (ORGPLANE_PROXY_URL of compose.yaml), not after a guessed delay.
        handover = [
            line
            for line in project.logs("control-plane", tail=2000).splitlines()
            if "wake route" in line or "hibernat" in line
        ]
        assert any("wake route confirmed through the proxy" in line for line in handover), handover
        started = time.monotonic()
        woken = await user.get(sessions, headers=org, follow_redirects=True, timeout=60)
        took = time.monotonic() - started
        assert woken.status_code == 200, (woken.status_code, woken.text, took)
        assert [s["title"] for s in woken.json()["items"]] == ["compose-notes"]
        assert woken.history, "answered without being woken"
        assert all(r.status_code == 307 for r in woken.history)
        assert await phase_of(user, cp, auth, org_id) == "running"
        print(f"wake through compose's Traefik: {took:.1f} s")

        # Suspended: the control plane's page at the org's host.
        suspended = await user.post(f"{cp}/api/v1/orgs/{org_id}/suspend", headers=auth)
        assert suspended.status_code == 202, suspended.text

        async def page() -> httpx.Response | None:
            answer = await user.get(f"http://acme.{project.base_domain}/")
            return answer if answer.status_code == 503 else None

        shown = await eventually(page, what="acme's suspended page through Traefik")
        assert "Acme is unavailable" in shown.text
        assert "suspended" in shown.text
        assert shown.headers["retry-after"] == "3600"
