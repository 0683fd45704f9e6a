"""On a slow host, hibernation stops the instance only once a real Traefik sends the org's
requests to the wake endpoint (``ORGPLANE_PROXY_URL``: the reconciler's probe through Traefik).

The fault is injected between Traefik and the control plane: a relay holds each answer of the
HTTP provider for :data:`LAG` seconds, longer than the 2.5 s the stop would otherwise allow for
Traefik to apply what it was served. The test watches Traefik's own API for the moment the wake
router is in force and the instance's port for the moment it stops; the stop must come after.
Without the probe it came about a second before, and requests in that gap got Traefik's 502.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import select

from control_plane.db.models import Instance
from control_plane.routing.handover import TRAEFIK_APPLIES
from control_plane.settings import Settings
from provisioners.processes import free_port
from provisioners.traefik import router_name
from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.relay import Relay
from tests.support.traefik import http_provider_flags, run_traefik, through
from tests.support.wait import eventually

pytestmark = pytest.mark.slow

BASE = "orgs.test"
TOKEN = f"routing-{uuid.uuid4().hex}"
#: How long each answer of the HTTP provider takes to reach Traefik (below its 5 s poll timeout).
LAG = TRAEFIK_APPLIES.total_seconds() + 1.5


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


def accepts(url: str) -> bool:
    """Whether something listens at ``url``'s host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False


async def test_the_instance_stops_after_traefik_routes_to_the_wake_endpoint(
    make_settings: Any, unused_tcp_port: int, tmp_path: Path
) -> None:
    port, web = unused_tcp_port, free_port()
    cp = f"http://127.0.0.1:{port}"
    settings: Settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_PROVISIONER="local",
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:10]}",
        ORGPLANE_PORT=str(port),
        ORGPLANE_BASE_DOMAIN=BASE,
        ORGPLANE_ROUTING_TOKEN=TOKEN,
        ORGPLANE_ROUTING_FALLBACK_URL=cp,
        ORGPLANE_ENTRYPOINTS="web",
        ORGPLANE_PROXY_URL=f"http://127.0.0.1:{web}",
    )
    slow = Relay("127.0.0.1", lambda: ("127.0.0.1", port), delay=LAG)
    try:
        async with serve_control_plane(settings, port) as app:
            providers = http_provider_flags(
                f"http://127.0.0.1:{slow.port}/api/v1/routing/traefik", TOKEN
            )
            with run_traefik(tmp_path / "traefik", providers, web=web) as traefik:
                async with (
                    httpx.AsyncClient(base_url=cp, timeout=30) as api,
                    through(traefik, timeout=60) as user,
                ):
                    await _hibernate_and_watch(app, api, user, traefik)
    finally:
        slow.close()


async def _hibernate_and_watch(app: Any, api: Any, user: Any, traefik: Any) -> None:
    admin = await admin_headers(app, api)
    made = await api.post(
        "/api/v1/orgs", headers=admin, json={"name": "Nap", "slug": "nap", "plan": "team"}
    )
    assert made.status_code == 202, made.text
    org_id = made.json()["id"]
    await wait_phase(api, admin, "nap", "running")
    token = {"Authorization": f"Bearer {await org_token(api, admin, 'nap')}"}
    url = f"http://nap.{BASE}/api/v1/sessions"

    async def served() -> bool:
        return (await user.get(url, headers=token)).status_code == 200

    await eventually(served, what="nap served through Traefik", timeout=60, interval=0.2)
    async with app.state.runtime.sessions() as db:
        row = (await db.exec(select(Instance).where(Instance.org_id == org_id))).one()
        endpoint = row.endpoint
    assert accepts(endpoint)

    wake_router = router_name(slug="nap", org_id=org_id) + "-wake"
    slept = await api.post(
        "/api/v1/orgs/nap/instance/actions", headers=admin, json={"action": "hibernate"}
    )
    assert slept.status_code == 202, slept.text
    routed_at = stopped_at = None
    deadline = time.monotonic() + 60
    while (routed_at is None or stopped_at is None) and time.monotonic() < deadline:
        now = time.monotonic()
        if routed_at is None and any(name.startswith(wake_router) for name in traefik.routers()):
            routed_at = now
        if stopped_at is None and not accepts(endpoint):
            stopped_at = now
        await asyncio.sleep(0.05)
    assert routed_at is not None, f"never routed to the wake endpoint: {traefik.routers()}"
    assert stopped_at is not None, "the instance never stopped"
    assert stopped_at >= routed_at, (
        f"the instance stopped {routed_at - stopped_at:.2f} s before Traefik routed to the wake "
        "endpoint"
    )
    await wait_phase(api, admin, "nap", "hibernated")

    # The first request afterwards wakes it through Traefik and is served.
    woken = await user.get(url, headers=token, follow_redirects=True)
    assert woken.status_code == 200, (woken.status_code, woken.text)
    assert woken.history, "served without a wake"
    assert all(r.status_code == 307 for r in woken.history)
