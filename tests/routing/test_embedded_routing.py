"""Embedded mode's edge: the control plane's own port answers ``{slug}.localhost:port``.

A real control plane with the local provisioner and ``ORGPLANE_EMBEDDED_ROUTING`` on; requests
reach it over a real socket with only the Host header naming the org (as a browser sends for
``http://acme.localhost:PORT/``). Known orgs are proxied to their instance (HTTP and WebSocket),
an org's token is refused at another org's host by that instance, the instance's metrics stay
unreachable through the proxy, a suspended org gets its page, a hibernated org is woken by its
first request, and unknown or deleted hosts are refused 404 ``unknown_host``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from control_plane.app import create_app
from control_plane.db.engine import make_sessionmaker
from control_plane.db.models import Instance, Org
from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.support.api import direct_db, runtime_of
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.orgs import make_org, user
from tests.support.wait import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
async def embedded(make_settings: Any, unused_tcp_port: int) -> Any:
    port = unused_tcp_port
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_PORT=str(port),
        ORGPLANE_PROVISIONER="local",
        ORGPLANE_EMBEDDED_ROUTING="true",
        ORGPLANE_DELETION_GRACE_SECONDS="1",
    )
    async with (
        serve_control_plane(settings, port) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as api,
    ):
        yield api, app, port


def at(slug: str, port: int, **headers: str) -> dict[str, str]:
    """Headers of a request for ``http://{slug}.localhost:{port}/``."""
    return {"Host": f"{slug}.localhost:{port}", **headers}


async def test_org_hosts_on_the_control_planes_port(embedded: Any) -> None:
    api, app, port = embedded
    admin = await admin_headers(app, api)
    for slug in ("acme", "beta"):
        made = await api.post(
            "/api/v1/orgs", headers=admin, json={"name": slug.title(), "slug": slug, "plan": "team"}
        )
        assert made.status_code == 202, made.text
    mine = (await api.get("/api/v1/me/orgs", headers=admin)).json()["items"]
    assert {o["slug"]: o["url"] for o in mine} == {
        "acme": f"http://acme.localhost:{port}/",  # this port answers them
        "beta": f"http://beta.localhost:{port}/",
    }
    bearer = {}
    for slug in ("acme", "beta"):
        await wait_phase(api, admin, slug, "running")
        bearer[slug] = f"Bearer {await org_token(api, admin, slug)}"

    # Each org by its Host only: its instance answers, with its own data.
    made = await api.post(
        "/api/v1/sessions",
        json={"title": "acme-notes"},
        headers=at("acme", port, Authorization=bearer["acme"]),
    )
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    listed = await api.get(
        "/api/v1/sessions", headers=at("acme", port, Authorization=bearer["acme"])
    )
    assert [s["title"] for s in listed.json()["items"]] == ["acme-notes"]
    other = await api.get(
        "/api/v1/sessions", headers=at("beta", port, Authorization=bearer["beta"])
    )
    assert other.status_code == 200, other.text
    assert other.json()["items"] == []
    # Another org's token is refused by the instance the host names.
    crossed = await api.get(
        "/api/v1/sessions", headers=at("beta", port, Authorization=bearer["acme"])
    )
    assert crossed.status_code == 401, crossed.text
    # The instance's metrics are for the platform's network only: through the proxy (which sets
    # X-Forwarded-For, as Traefik does) they do not exist.
    assert (await api.get("/metrics", headers=at("acme", port))).status_code == 404
    # The control plane's own host is still the control plane.
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/api/v1/sessions")).status_code == 404

    # Live events over a WebSocket through the proxy, and a refused token's close code.
    access = bearer["acme"].split()[1]
    url = f"ws://acme.localhost:{port}/api/v1/sessions/{sid}/events"
    async with connect(f"{url}?access_token={access}", host="127.0.0.1", port=port) as ws:
        sent = await api.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"body": "through the embedded edge"},
            headers=at("acme", port, Authorization=bearer["acme"]),
        )
        assert sent.status_code in (200, 201), sent.text
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    assert frame["body"] == "through the embedded edge"
    async with connect(f"{url}?access_token=nope", host="127.0.0.1", port=port) as refused:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(refused.recv(), timeout=30)
    assert refused.close_code == 4401

    # A host no org owns: refused, never a default org.
    unknown = await api.get("/", headers=at("nobody", port))
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_host"

    # A suspended org: its page, 503 with Retry-After.
    assert (await api.post("/api/v1/orgs/beta/suspend", headers=admin)).status_code == 202
    page = await api.get("/", headers=at("beta", port))
    assert page.status_code == 503, page.text
    assert "Beta is unavailable" in page.text
    assert page.headers["retry-after"] == "3600"

    # A hibernated org: its first request wakes it (307 back to the same URL) and is served.
    slept = await api.post(
        "/api/v1/orgs/acme/instance/actions", headers=admin, json={"action": "hibernate"}
    )
    assert slept.status_code == 202, slept.text
    await wait_phase(api, admin, "acme", "hibernated")
    first = await api.get(
        "/api/v1/sessions", headers=at("acme", port, Authorization=bearer["acme"])
    )
    assert first.status_code == 307, first.text
    assert first.headers["location"] == f"http://acme.localhost:{port}/api/v1/sessions"

    async def served() -> httpx.Response | None:
        again = await api.get(
            "/api/v1/sessions", headers=at("acme", port, Authorization=bearer["acme"])
        )
        return again if again.status_code == 200 else None

    woken = await eventually(served, what="acme served after its wake", interval=0.5)
    assert [s["title"] for s in woken.json()["items"]] == ["acme-notes"]

    # A deleted org's host: refused like an unknown one.
    gone = await api.delete("/api/v1/orgs/acme", params={"confirm": "acme"}, headers=admin)
    assert gone.status_code == 202, gone.text

    async def deleted() -> httpx.Response | None:
        after = await api.get("/api/v1/sessions", headers=at("acme", port))
        return after if after.status_code == 404 else None

    after = await eventually(deleted, what="acme's host refused once deleted", interval=0.5)
    assert after.json()["code"] == "unknown_host"


async def test_without_the_setting_org_hosts_reach_the_control_plane(make_settings: Any) -> None:
    app = create_app(make_settings())
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as client:
        answer = await client.get("/healthz", headers={"Host": "acme.localhost:8080"})
        admin = await user(client, "root@example.com", admin=True)
        await make_org(client, admin, "acme")
        mine = (await client.get("/api/v1/me/orgs", headers=admin)).json()["items"]
    assert answer.json() == {"status": "ok"}  # the control plane's own route, not a proxy
    assert [o["url"] for o in mine] == ["http://acme.localhost/"]  # the edge's port, 80


async def test_an_instance_that_does_not_answer_is_a_502(make_settings: Any) -> None:
    """A fault injected in the data: the org runs, by its row, at a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    app = create_app(make_settings(ORGPLANE_EMBEDDED_ROUTING="true"))
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as client:
        admin = await user(client, "root@example.com", admin=True)
        org = await make_org(client, admin, "acme")
        async with direct_db(client) as db:
            await db.exec(update(Org).where(col(Org.id) == org["id"]).values(phase="running"))
            db.add(Instance(org_id=org["id"], provisioner="local", endpoint=f"127.0.0.1:{closed}"))
            await db.commit()
        answer = await client.get("/api/v1/me", headers={"Host": "acme.localhost:8080"})
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "instance_unreachable"


def test_production_mode_refuses_embedded_routing(make_settings: Any) -> None:
    with pytest.raises(ValueError, match="embedded mode only"):
        make_settings(
            ORGPLANE_MODE="production",
            ORGPLANE_EMBEDDED_ROUTING="true",
        )


async def test_a_database_outage_is_a_503_problem(make_settings: Any) -> None:
    """A fault injected: the org lookup's database is a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    app = create_app(make_settings(ORGPLANE_EMBEDDED_ROUTING="true"))
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as client:
        runtime = runtime_of(client)
        gone = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x")
        kept, runtime.sessions = runtime.sessions, make_sessionmaker(gone)
        try:
            answer = await client.get("/api/v1/me", headers={"Host": "acme.localhost:8080"})
        finally:
            runtime.sessions = kept
            await gone.dispose()
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "database_unavailable"
    assert answer.headers["retry-after"] == "5"
