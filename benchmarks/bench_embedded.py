"""Embedded mode's edge: what a request to an org costs through the control plane's own port.

The control plane of ``bench_provision_api`` (uvicorn in this process, SQLite, the local
backend, its own deployment id) with ``ORGPLANE_EMBEDDED_ROUTING`` on, as ``orgplane up`` runs
it, and one org running. ``BENCH_EMBEDDED_REQUESTS`` (default 300) sequential
``GET /api/v1/me`` with the org's token, each way, alternating:

* **direct**: to the instance's own port, ``Host: {slug}.localhost`` (what Traefik does);
* **proxied**: to the control plane's port, ``Host: {slug}.localhost:PORT`` (what a browser does
  after "Open" under ``make run``): the org looked up in the database, the request streamed to
  the instance with httpx and the answer streamed back.

Reported: both distributions and the difference of their medians (the proxy's cost). No target
is asserted: the embedded mode serves one developer's browser, not production traffic.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time

import httpx

from benchmarks import Result
from benchmarks.bench_provision_api import _Admin, _bench_local, _control_plane
from control_plane.settings import Settings

REQUESTS = int(os.environ.get("BENCH_EMBEDDED_REQUESTS", "300"))
SLUG = "bench-embedded"
TIMEOUT = 120.0


async def _org_token(admin: _Admin) -> str:
    answer = await admin.http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": admin.headers["Authorization"].split()[1],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": f"org:{SLUG}",
        },
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


async def _endpoint(admin: _Admin, org_id: str) -> str:
    """The instance's address once the org runs."""
    deadline = time.perf_counter() + TIMEOUT
    while time.perf_counter() < deadline:
        body = (
            await admin.http.get(f"/api/v1/orgs/{org_id}/instance", headers=admin.headers)
        ).json()
        if body.get("phase") == "running" and body.get("endpoint"):
            return str(body["endpoint"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{SLUG} did not reach running within {TIMEOUT:g} s")


async def _time(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    answer = await client.get(url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
    return elapsed


async def _drive(settings: Settings, sockets: list[socket.socket], _backend: str) -> list[Result]:
    port = settings.server.port
    base = f"http://127.0.0.1:{port}"
    for sock in sockets:
        # As on the socket `orgplane up` binds (asyncio sets TCP_NODELAY on the connections of a
        # socket it made; these pre-made ones have protocol 0 and would not get it): without it
        # the proxy's answer, written in several parts, waits for the client's delayed ACK
        # (measured: 56 ms instead of 12 ms a request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    async with (
        _control_plane(settings, sockets),
        httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as http,
    ):
        admin = _Admin(http)
        await admin.login()
        # The team plan: 6,000 requests a minute (the free plan's 600 would throttle the run).
        made = await http.post(
            "/api/v1/orgs", headers=admin.headers, json={"name": SLUG, "slug": SLUG, "plan": "team"}
        )
        made.raise_for_status()
        org_id = str(made.json()["id"])
        endpoint = await _endpoint(admin, org_id)
        bearer = f"Bearer {await _org_token(admin)}"
        direct_url = (endpoint if "://" in endpoint else f"http://{endpoint}") + "/api/v1/me"
        direct_headers = {"Host": f"{SLUG}.localhost", "Authorization": bearer}
        proxied_headers = {"Host": f"{SLUG}.localhost:{port}", "Authorization": bearer}
        direct, proxied = [], []
        await _time(http, direct_url, direct_headers)  # connections opened, caches warm
        await _time(http, f"{base}/api/v1/me", proxied_headers)
        for _ in range(REQUESTS):
            direct.append(await _time(http, direct_url, direct_headers))
            proxied.append(await _time(http, f"{base}/api/v1/me", proxied_headers))
    added = statistics.median(proxied) - statistics.median(direct)
    return [
        Result.distribution("embedded: GET /api/v1/me straight to the instance", direct, "ms"),
        Result.distribution("embedded: GET /api/v1/me through the control plane", proxied, "ms"),
        Result("embedded: added by the proxy (difference of medians)", added, "ms"),
    ]


def run() -> list[Result]:
    """See the module docstring."""
    return asyncio.run(_bench_local(_drive, EMBEDDED_ROUTING="true"))
