"""Branding reaches the org's instance, end to end: a real control plane, real local instances.

A parent's branding (and logo) set through the API is handed to its child's instance in the
heartbeat answer (the change bumps ``config_version``) and answered by the instance's
``/api/v1/me``; the child's own colour then replaces the inherited one. Over HTTP heartbeats,
and over Redis (the answer left in the org's namespace) when Redis is there.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.support.images import image_bytes
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import eventually

#: Ports of this file (the branding work's range, 47500-47599).
PORTS = {"http": 47510, "redis": 47511}


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture(params=["http", "redis"])
async def live(request: pytest.FixtureRequest, make_settings: Any) -> Any:
    port = PORTS[request.param]
    extra = {}
    if request.param == "redis":
        need("Redis", redis_available())
        extra = {"ORGPLANE_REDIS_URL": REDIS_URL, "ORGPLANE_HEARTBEAT_POLL_SECONDS": "0.3"}
    settings = make_settings(
        **FAST_RECONCILER,
        **extra,
        ORGPLANE_DELETION_GRACE_SECONDS="1",
        ORGPLANE_PORT=str(port),
        ORGPLANE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with (
        serve_control_plane(settings, port) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http,
    ):
        yield http, app


async def test_the_instance_answers_the_branding_in_force(live: Any) -> None:
    http, app = live
    headers = await admin_headers(app, http)
    for body in ({"name": "Corp", "slug": "bcorp", "plan": "team"},
                 {"name": "Eng", "slug": "bcorp-eng", "parent_id": "bcorp"}):  # fmt: skip
        created = await http.post("/api/v1/orgs", headers=headers, json=body)
        assert created.status_code == 202, created.text
    running = await wait_phase(http, headers, "bcorp-eng", "running")
    token = await org_token(http, headers, "bcorp-eng")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=running["endpoint"], headers=auth, timeout=10) as inst:
        first = (await inst.get("/api/v1/me")).json()["branding"]
        assert first["display_name"] == "Eng"  # the org's name: nothing set yet
        assert first["primary_color"] is None

        put = await http.put("/api/v1/orgs/bcorp/branding", headers=headers, json={
            "display_name": "Corp Inc.", "primary_color": "#003366",
            "contact_email": "help@corp.example"})  # fmt: skip
        assert put.status_code == 200, put.text
        logo = await http.put(
            "/api/v1/orgs/bcorp/branding/logo",
            headers=headers,
            content=image_bytes((6, 6), (0, 120, 200)),
        )
        assert logo.status_code == 200, logo.text
        expected = {
            "display_name": "Corp Inc.",
            "primary_color": "#003366",
            "text_color": "#ffffff",
            "contact_email": "help@corp.example",
            "logo_url": str(http.base_url).rstrip("/") + logo.json()["own"]["logo_url"],
        }

        async def inherited() -> bool:
            return (await inst.get("/api/v1/me")).json()["branding"] == expected

        await eventually(inherited, what="the parent's branding on the instance", interval=0.2)
        served = await http.get(expected["logo_url"])  # an absolute URL the browser can load
        assert served.headers["content-type"] == "image/png"

        # The child's own colour replaces the inherited one; the rest stays inherited.
        own = await http.put("/api/v1/orgs/bcorp-eng/branding", headers=headers,
                             json={"primary_color": "#ffcc00"})  # fmt: skip
        assert own.status_code == 200, own.text

        async def own_colour() -> bool:
            branding = (await inst.get("/api/v1/me")).json()["branding"]
            return branding == {**expected, "primary_color": "#ffcc00", "text_color": "#111111"}

        await eventually(own_colour, what="the child's own colour on the instance", interval=0.2)

    # A deleted org's branding goes with it: its own logo's URL stops answering.
    child_logo = await http.put("/api/v1/orgs/bcorp-eng/branding/logo", headers=headers,
                                content=image_bytes((3, 3), (250, 0, 0)))  # fmt: skip
    child_url = child_logo.json()["own"]["logo_url"]
    assert (await http.get(child_url)).status_code == 200
    gone = await http.delete("/api/v1/orgs/bcorp-eng", params={"confirm": "bcorp-eng"},
                             headers=headers)  # fmt: skip
    assert gone.status_code == 202, gone.text

    async def forgotten() -> bool:
        return (await http.get(child_url)).status_code == 404

    await eventually(forgotten, what="the deleted org's logo gone", interval=0.3)
    assert (await http.get(expected["logo_url"])).status_code == 200  # the parent's stays
