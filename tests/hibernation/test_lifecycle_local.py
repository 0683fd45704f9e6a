"""Hibernation end to end on the local backend: idle orgs sleep, the first request wakes them."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from control_plane.db.models import AuditEvent, InstanceEvent
from control_plane.settings import Settings
from provisioners.traefik import ASLEEP_PRIORITY, WAKE_PREFIX, WAKE_SERVICE, router_name
from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.routing.schemas import validate_dynamic
from tests.support.live import FAST_RECONCILER, serve_control_plane

pytestmark = pytest.mark.slow

HIBERNATE_AFTER = 4.0
ROUTING_TOKEN = "routing-token-for-hibernation-tests"


@pytest.fixture
def db_backend() -> str:
    """Like the reconciler's lifecycle tests: SQLite (the wake race runs on both in test_idle)."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any, unused_tcp_port: int) -> Any:
    settings: Settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_HIBERNATE_AFTER=str(HIBERNATE_AFTER),
        ORGPLANE_WAKE_HOLD_TIMEOUT="60",
        ORGPLANE_ROUTING_TOKEN=ROUTING_TOKEN,
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with serve_control_plane(settings, unused_tcp_port) as app:
        base = f"http://127.0.0.1:{unused_tcp_port}"
        async with httpx.AsyncClient(base_url=base, timeout=90) as http:
            yield http, app, unused_tcp_port


async def sessions(endpoint: str, token: str, *, create: str = "") -> list[str]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=10) as inst:
        auth = {"Authorization": f"Bearer {token}"}
        if create:
            made = await inst.post("/api/v1/sessions", json={"title": create}, headers=auth)
            assert made.status_code == 201, made.text
        listed = await inst.get("/api/v1/sessions", headers=auth)
        assert listed.status_code == 200, listed.text
        return [s["title"] for s in listed.json()["items"]]


async def kinds(app: Any, org_id: str) -> list[str]:
    async with app.state.runtime.sessions() as db:
        query = select(InstanceEvent.kind).where(InstanceEvent.org_id == org_id)
        return list((await db.exec(query)).all())


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its parent's wait() does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_an_idle_org_hibernates_and_the_first_requests_wake_it_once(live: Any) -> None:
    http, app, port = live
    provisioner = app.state.runtime.provisioner
    headers = await admin_headers(app, http)
    created = await http.post("/api/v1/orgs", headers=headers, json={"name": "Nap", "slug": "nap"})
    assert created.status_code == 202, created.text
    org_id = created.json()["id"]
    running = await wait_phase(http, headers, "nap", "running")
    token = await org_token(http, headers, "nap")
    assert await sessions(running["endpoint"], token, create="canary") == ["canary"]
    pid = int((await provisioner.status(org_id=org_id)).handle["pid"])

    # Idle: hibernated, process gone, data kept.
    asleep = await wait_phase(http, headers, "nap", "hibernated", timeout=HIBERNATE_AFTER + 30)
    assert asleep["hibernated_at"]
    assert asleep["last_active_at"]
    status = await provisioner.status(org_id=org_id)
    assert status is not None
    assert status.state == "stopped"
    assert not process_alive(pid)
    assert any(Path(status.handle["data_dir"]).iterdir())
    assert "instance.hibernating" in await kinds(app, org_id)
    listed = await http.get("/api/v1/orgs", params={"phase": "hibernated"}, headers=headers)
    assert [o["slug"] for o in listed.json()["items"]] == ["nap"]

    # Left alone, the reconciler keeps it asleep: no restart, no "unhealthy". (A fixed wait on
    # purpose: nothing may happen during six reconcile intervals.)
    await asyncio.sleep(6 * float(FAST_RECONCILER["ORGPLANE_RECONCILE_INTERVAL"]))
    still = (await http.get(f"/api/v1/orgs/{org_id}/instance", headers=headers)).json()
    assert still["phase"] == "hibernated"
    assert (await provisioner.status(org_id=org_id)).state == "stopped"

    # Traefik sends its host to the wake endpoint, above the priority of any own route.
    config = (
        await http.get(
            "/api/v1/routing/traefik", headers={"Authorization": f"Bearer {ROUTING_TOKEN}"}
        )
    ).json()
    validate_dynamic(config)
    router = config["http"]["routers"][router_name(slug="nap", org_id=org_id) + "-wake"]
    assert router["service"] == WAKE_SERVICE
    assert router["priority"] == ASLEEP_PRIORITY

    # A browser gets the starting page; the org comes back with its data.
    page = await http.get(
        f"{WAKE_PREFIX}/", headers={"Host": "nap.localhost", "Accept": "text/html"}
    )
    assert page.status_code == 503
    assert page.headers["retry-after"] == "2"
    assert "Nap is starting" in page.text
    back = await wait_phase(http, headers, "nap", "running", timeout=60)
    token = await org_token(http, headers, "nap")
    assert await sessions(back["endpoint"], token) == ["canary"]

    # Asleep again; API requests at once are held until it runs, then sent back to their
    # URL; the instance is started once.
    await wait_phase(http, headers, "nap", "hibernated", timeout=HIBERNATE_AFTER + 30)
    applied = (await kinds(app, org_id)).count("instance.applied")
    held = await asyncio.gather(
        *(
            http.get(
                f"{WAKE_PREFIX}/api/v1/sessions",
                params={"n": str(n)},
                headers={"Host": f"nap.localhost:{port}"},
            )
            for n in range(4)
        )
    )
    assert [r.status_code for r in held] == [307] * 4, [r.text for r in held]
    assert sorted(r.headers["location"] for r in held) == [
        f"http://nap.localhost:{port}/api/v1/sessions?n={n}" for n in range(4)
    ]
    assert (await http.get(f"/api/v1/orgs/{org_id}/instance", headers=headers)).json()[
        "phase"
    ] == "running"
    events = await kinds(app, org_id)
    assert events.count("instance.applied") == applied + 1
    assert events.count("instance.waking") == 2
    async with app.state.runtime.sessions() as db:
        query = select(AuditEvent.action).where(AuditEvent.org_id == org_id)
        actions = list((await db.exec(query)).all())
    assert actions.count("instance.wake") == 2
    assert actions.count("instance.hibernate") == 2


async def test_an_org_with_traffic_stays_awake(live: Any) -> None:
    http, app, _ = live
    headers = await admin_headers(app, http)
    created = await http.post(
        "/api/v1/orgs", headers=headers, json={"name": "Busy", "slug": "busy"}
    )
    org_id = created.json()["id"]
    running = await wait_phase(http, headers, "busy", "running")
    token = await org_token(http, headers, "busy")
    deadline = time.monotonic() + 2.5 * HIBERNATE_AFTER
    while time.monotonic() < deadline:
        await sessions(running["endpoint"], token)
        phase = (await http.get(f"/api/v1/orgs/{org_id}/instance", headers=headers)).json()
        # (a heartbeat late on a loaded machine may show "unhealthy"; never asleep)
        assert phase["phase"] not in ("stopping", "hibernated"), phase
        assert phase["hibernated_at"] is None
        await asyncio.sleep(0.7)  # traffic spread over the window: the time is the point
    # The same org, left alone, does hibernate: the traffic is what kept it up.
    await wait_phase(http, headers, "busy", "hibernated", timeout=HIBERNATE_AFTER + 30)
    unknown = await http.get(f"{WAKE_PREFIX}/", headers={"Host": "nobody.localhost"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_org"
