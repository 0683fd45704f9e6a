"""A staged rollout over ``BENCH_ROLLOUT_ORGS`` (default 100) orgs on the local backend:
time per wave and end to end.

A real control plane (uvicorn in this process, SQLite, the local backend: one real instance
process per org, the reconciler on with ``ORGPLANE_RECONCILE_INTERVAL=2`` and
``ORGPLANE_MAX_CONCURRENT_PROVISIONING=8`` as in ``bench_provision_api``) and a platform admin
driving it over HTTP. The orgs are created and brought to ``running`` first (not measured),
versions ``v1`` (the image they run) and ``v2`` are registered, then one rollout moves every
org in waves ``BENCH_ROLLOUT_WAVES`` (default ``1,5%,25%,100%``) at most
``BENCH_ROLLOUT_CONCURRENCY`` (default 8) at a time. Each org's upgrade is a pre-upgrade backup
through its instance's API, a restart on the new version and the health gate (its heartbeat
reporting ``v2``). The rollout is polled every 0.25 s: a wave's time runs from the previous
wave's end (or the rollout's creation) to the poll that first shows the next wave. Also the
distribution of one org's upgrade, from its start (the backup) to passing the gate, as the
rollout's rows record it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from datetime import datetime

import httpx

from benchmarks import Result
from benchmarks.bench_provision_api import _Admin, _bench_local, _control_plane
from control_plane.settings import Settings

ORGS = int(os.environ.get("BENCH_ROLLOUT_ORGS", "100"))
WAVES: list[int | str] = [
    w if w.endswith("%") else int(w)
    for w in os.environ.get("BENCH_ROLLOUT_WAVES", "1,5%,25%,100%").split(",")
]
CONCURRENCY = int(os.environ.get("BENCH_ROLLOUT_CONCURRENCY", "8"))
#: Left out of ``make bench`` unless named (see ``benchmarks/__main__.py``).
SLOW = "100 local instances started, then each backed up and restarted: several minutes"
SETUP_TIMEOUT = 900.0
ROLLOUT_TIMEOUT = 1800.0
#: Targets (docs/performance.md): a wave costs a fixed latency (a reconciler pass to notice the
#: previous wave's end, a backup, a restart, a first heartbeat: ``WAVE_BASE``) plus
#: ``ROUND_SECONDS`` per round of ``CONCURRENCY`` upgrades (an instance restart is ~0.3-0.9 CPU-s
#: and a backup ~0.1, so 8 at once on 2 cores take about 1.5 s when the machine is quiet).
WAVE_BASE = 10.0
ROUND_SECONDS = 1.5
#: 100 orgs in <= 2 minutes: >= 50 orgs a minute on 2 cores.
END_TO_END = 120.0


async def _all_running(admin: _Admin) -> None:
    deadline = time.perf_counter() + SETUP_TIMEOUT
    while len(await admin.running_ids()) < ORGS:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the {ORGS} orgs were not all running after {SETUP_TIMEOUT:.0f}s")
        await asyncio.sleep(1.0)


async def _drive(settings: Settings, sockets: list[socket.socket], backend: str) -> list[Result]:
    base = f"http://127.0.0.1:{settings.server.port}"
    async with (
        _control_plane(settings, sockets),
        httpx.AsyncClient(base_url=base, timeout=60, trust_env=False) as http,
    ):
        admin = _Admin(http)
        await admin.login()
        for i in range(ORGS):
            await admin.create_org(f"roll-{i:03d}")
        await _all_running(admin)
        for name, image in (
            ("v1", settings.provisioning.instance_image),
            ("v2", "orgplane-instance:bench-v2"),
        ):
            made = await http.post(
                "/api/v1/versions", headers=admin.headers, json={"name": name, "image": image}
            )
            made.raise_for_status()
        body = {
            "to_version": "v2",
            "target": {"kind": "all"},
            "waves": WAVES,
            "max_concurrent": CONCURRENCY,
            "health_deadline_seconds": 300,
        }
        started = time.perf_counter()
        made = await http.post("/api/v1/rollouts", headers=admin.headers, json=body)
        made.raise_for_status()
        rollout_id, waves = made.json()["id"], made.json()["wave_count"]
        ends: list[float] = []
        state = "running"
        while state == "running" and time.perf_counter() - started < ROLLOUT_TIMEOUT:
            await asyncio.sleep(0.25)
            got = (await http.get(f"/api/v1/rollouts/{rollout_id}", headers=admin.headers)).json()
            state = got["state"]
            while len(ends) < min(got["current_wave"], waves):
                ends.append(time.perf_counter())
        total = time.perf_counter() - started
        if state != "finished":
            raise RuntimeError(f"the rollout ended {state}: {got['reason']} {got['counts']}")
        sizes = [sum(o["wave"] == n for o in got["orgs"]) for n in range(waves)]
        upgrades = [
            (
                datetime.fromisoformat(o["finished_at"]) - datetime.fromisoformat(o["started_at"])
            ).total_seconds()
            for o in got["orgs"]
            if o["state"] == "upgraded"
        ]
    results = []
    previous = started
    for n, (end, size) in enumerate(zip(ends, sizes, strict=True)):
        limit = WAVE_BASE + ROUND_SECONDS * -(-size // CONCURRENCY)
        seconds = end - previous
        results.append(
            Result(
                f"local: wave {n + 1} of {waves} ({size} orgs)",
                seconds,
                "s",
                target=f"<= {limit:.0f} s",
                met=seconds <= limit,
            )
        )
        previous = end
    limit = END_TO_END * ORGS / 100
    results.append(
        Result(
            f"local: {ORGS} orgs, end to end",
            total,
            "s",
            target=f"<= {limit:.0f} s",
            met=total <= limit,
        )
    )
    results.append(Result(f"local: {ORGS} orgs, pace", ORGS / total * 60, "orgs/min"))
    results.append(
        Result.distribution("local: one org's upgrade (backup, restart, gate)", upgrades, "s")
    )
    return results


def run() -> list[Result]:
    """Measure (see the module docstring)."""
    return asyncio.run(_bench_local(_drive, HEARTBEAT_INTERVAL="10", RECONCILE_INTERVAL="2"))


if __name__ == "__main__":
    for result in run():
        print(f"{result.metric:<40} {result.value:>8.2f} {result.unit:<9} {result.target}")
