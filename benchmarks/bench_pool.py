"""Provisioning from the warm pool: ``POST /api/v1/orgs`` to the first heartbeat of a claimed spare.

The same control plane as ``bench_provision_api`` (uvicorn in this process, SQLite, reconciler
every 0.2 s, heartbeats every second, its own deployment id), with
``ORGPLANE_WARM_POOL_SIZE`` = ``BENCH_POOL_BURST`` (default 4) and as many provisioning slots.
For each backend in ``BENCH_POOL_BACKENDS`` (default ``local,docker``), ``BENCH_POOL_ROUNDS``
(default 5) rounds: wait until the pool is full (every spare ``ready``), send a burst of
``BENCH_POOL_BURST`` creations at once, and time each org from its ``POST`` answer until
``GET /api/v1/orgs/{id}/instance`` (polled every 20 ms) shows a heartbeat. Median and p95 over
every org; target (issue 10): median <= 0.5 s. Docker setup and clean-up as in
``bench_provision_api`` (a labelled network, ports on 127.0.0.1, everything swept).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from benchmarks import Result, percentiles
from benchmarks.bench_provision_api import (
    POLL,
    _Admin,
    _bench_docker,
    _bench_local,
    admin_session,
)
from control_plane.settings import Settings

BURST = int(os.environ.get("BENCH_POOL_BURST", "4"))
ROUNDS = int(os.environ.get("BENCH_POOL_ROUNDS", "5"))
BACKENDS = os.environ.get("BENCH_POOL_BACKENDS", "local,docker").split(",")
FILL_TIMEOUT = 120.0
ORG_TIMEOUT = 60.0
TARGET = 0.5


async def _pool_full(admin: _Admin) -> None:
    deadline = time.perf_counter() + FILL_TIMEOUT
    while time.perf_counter() < deadline:
        pool = (await admin.http.get("/api/v1/pool", headers=admin.headers)).json()
        if pool["ready"] >= BURST and pool["warming"] == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the pool did not fill to {BURST} within {FILL_TIMEOUT:g}s")


async def _burst(admin: _Admin, prefix: str) -> list[float]:
    """Seconds from each POST answer of a burst to that org's first heartbeat."""
    created = await asyncio.gather(*(admin.create_org(f"{prefix}-{i:02d}") for i in range(BURST)))
    waiting = dict(created)
    timings: list[float] = []
    while waiting:
        for org_id, answered in list(waiting.items()):
            if await admin.has_heartbeat(org_id):
                timings.append(time.perf_counter() - answered)
                del waiting[org_id]
            elif time.perf_counter() - answered > ORG_TIMEOUT:
                raise TimeoutError(f"no heartbeat within {ORG_TIMEOUT:g}s")
        await asyncio.sleep(POLL)
    return timings


async def _drive(settings: Settings, sockets: list[socket.socket], backend: str) -> list[Result]:
    async with admin_session(settings, sockets) as admin:
        timings: list[float] = []
        for round_no in range(ROUNDS):
            await _pool_full(admin)
            timings += await _burst(admin, f"pool{round_no}")
    median, p95, _ = percentiles(timings)
    label = f"{backend}: warm pool, POST to first heartbeat ({ROUNDS} bursts of {BURST})"
    return [
        Result(label, median, "s", f"<= {TARGET:g} s", median <= TARGET, p95=p95, n=len(timings))
    ]


def run() -> list[Result]:
    """Measure every backend in ``BENCH_POOL_BACKENDS``."""
    results: list[Result] = []
    for backend in (b.strip() for b in BACKENDS):
        bench = _bench_docker if backend == "docker" else _bench_local
        results += asyncio.run(
            bench(_drive, WARM_POOL_SIZE=str(BURST), MAX_CONCURRENT_PROVISIONING=str(BURST))
        )
    return results


if __name__ == "__main__":
    print(f"{ROUNDS} bursts of {BURST}, load average {os.getloadavg()[0]:.2f}")
    for result in run():
        print(f"{result.metric:<64} {result.value:>6.3f} {result.unit} p95 {result.p95 or 0:.3f}")
