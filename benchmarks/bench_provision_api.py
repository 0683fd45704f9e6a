"""Provisioning through the API: from ``POST /api/v1/orgs`` to the instance's first heartbeat.

A real control plane (uvicorn in this process, SQLite in a temporary directory, reconciler on
with ``ORGPLANE_RECONCILE_INTERVAL`` from ``BENCH_PROVISION_API_RECONCILE`` (default 2, the
product's default: writes and first heartbeats wake the reconciler, so a new org does not wait
for the interval), ``ORGPLANE_HEARTBEAT_INTERVAL`` from
``BENCH_PROVISION_API_HEARTBEAT`` (default 10, the product's default; the first heartbeat is sent
as soon as an instance is ready whatever the interval, but every running instance then beats at
that rate while the bursts start),
``ORGPLANE_MAX_CONCURRENT_PROVISIONING=8``, its own ``ORGPLANE_DEPLOYMENT_ID``) and a platform
admin driving it over HTTP on 127.0.0.1. For each backend in ``BENCH_PROVISION_API_BACKENDS``
(default ``local,docker``):

* **One after another**: ``BENCH_PROVISION_API_ORGS`` (default 20) orgs; for each, the time from
  the ``POST`` answer until ``GET /api/v1/orgs/{id}/instance`` (polled every 20 ms) shows a
  ``last_heartbeat_at``. Median, p95 and max (with 20 samples p99 is the max).
* **At once** (docker): for each size in ``BENCH_PROVISION_API_BURSTS`` (default ``10,50``), that
  many ``POST`` requests together; the time until every org is ``running`` (the backend's
  word and a heartbeat; bounded at 120 s), polled every 0.1 s with one list request. Then the
  CPU every idle org costs over ``BENCH_PROVISION_API_IDLE_WINDOW`` seconds (default 30): the
  engine's processes on this host, the containers' own and the control plane's, each as a share
  of one core per org. Then the memory of idle instances, median of up to 10 containers: the
  RSS of the instance's process (``VmRSS``, read from this host's ``/proc``; the target's
  figure), and what ``docker stats`` shows (the container's charge without inactive page
  cache). ``BENCH_PROVISION_API_HEALTH_INTERVAL=10`` gives the containers
  the engine's health check every 10 s (the image's interval; none by default), for comparison.

Docker needs the engine and the ``orgplane-instance:dev`` image (``scripts/build-images.sh``),
else it reports "skipped". The run creates a user-defined network labelled
``orgplane.test-run=<run id>`` and binds the control plane on 127.0.0.1 and on that network's
gateway address, which is where its containers send heartbeats (nothing else can reach it);
instance ports are published on 127.0.0.1 so the backend's readiness probe reaches them. At the
end every instance is removed through the provisioner, then anything still labelled with the
run id (containers, volumes, the network) is swept.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import Result, percentiles, rss_bytes
from benchmarks.api_harness import ADMIN_EMAIL as ADMIN_EMAIL
from benchmarks.api_harness import ADMIN_PASSWORD as ADMIN_PASSWORD
from benchmarks.api_harness import IMAGE as IMAGE
from benchmarks.api_harness import TEST_RUN_LABEL as TEST_RUN_LABEL
from benchmarks.api_harness import Drive, bench_docker, bench_local
from benchmarks.api_harness import _Admin as _Admin
from benchmarks.api_harness import _control_plane as _control_plane
from benchmarks.api_harness import _run_containers as _run_containers
from benchmarks.api_harness import admin_session as admin_session
from control_plane.settings import Settings

ORGS = int(os.environ.get("BENCH_PROVISION_API_ORGS", "20"))
BURSTS = [int(n) for n in os.environ.get("BENCH_PROVISION_API_BURSTS", "10,50").split(",") if n]
BACKENDS = os.environ.get("BENCH_PROVISION_API_BACKENDS", "local,docker").split(",")
POLL = 0.02
BURST_POLL = 0.1
#: Left out of ``make bench`` unless named (see ``benchmarks/__main__.py``).
SLOW = "a control plane provisioning up to 80 Docker instances: several minutes"
ONE_TIMEOUT = 60.0
BURST_TIMEOUT = 120.0
#: Seconds over which idle orgs' CPU is measured (``BENCH_PROVISION_API_IDLE_WINDOW``).
IDLE_WINDOW = float(os.environ.get("BENCH_PROVISION_API_IDLE_WINDOW", "30"))


async def _one_after_another(admin: _Admin, prefix: str, count: int) -> list[float]:
    """Seconds from each ``POST`` answer to its first heartbeat, orgs created in turn."""
    timings = []
    for i in range(count):
        org_id, answered = await admin.create_org(f"{prefix}-{i:03d}")
        while not await admin.has_heartbeat(org_id):
            if time.perf_counter() - answered > ONE_TIMEOUT:
                raise TimeoutError(f"no heartbeat within {ONE_TIMEOUT}s")
            await asyncio.sleep(POLL)
        timings.append(time.perf_counter() - answered)
    return timings


async def _at_once(admin: _Admin, prefix: str, count: int) -> tuple[float, int]:
    """Seconds from sending ``count`` creations together until every org is ``running`` (or
    until :data:`BURST_TIMEOUT`), and how many were by then. One list request per
    :data:`BURST_POLL`: polling each org's instance in turn kept the benchmark's process (which
    is also the control plane) a core busy, competing with the instances it was timing."""
    started = time.perf_counter()
    created = await asyncio.gather(*(admin.create_org(f"{prefix}-{i:03d}") for i in range(count)))
    waiting = {org_id for org_id, _ in created}
    while waiting and time.perf_counter() - started < BURST_TIMEOUT:
        waiting -= await admin.running_ids()
        await asyncio.sleep(BURST_POLL)
    return time.perf_counter() - started, count - len(waiting)


def _summary(backend: str, timings: list[float], targets: bool) -> list[Result]:
    median, p95, _ = percentiles(timings)
    worst = max(timings)
    n = len(timings)
    return [
        Result(
            f"{backend}: POST to first heartbeat, median of {n}",
            median,
            "s",
            "<= 1.5 s" if targets else "",
            median <= 1.5 if targets else None,
        ),
        Result(f"{backend}: POST to first heartbeat, p95 of {n}", p95, "s"),
        Result(
            f"{backend}: POST to first heartbeat, max of {n} (p99)",
            worst,
            "s",
            "p99 <= 4 s" if targets else "",
            worst <= 4.0 if targets else None,
        ),
    ]


async def _drive(settings: Settings, sockets: list[socket.socket], backend: str) -> list[Result]:
    async with admin_session(settings, sockets) as admin:
        results = _summary(
            backend, await _one_after_another(admin, "seq", ORGS), backend == "docker"
        )
        if backend != "docker":
            return results
        for size in BURSTS:
            cpu = time.process_time()
            seconds, reached = await _at_once(admin, f"burst{size}", size)
            cpu = time.process_time() - cpu
            target = {10: 8.0, 50: 30.0}.get(size)
            done = reached == size
            results.append(
                Result(
                    f"docker: {size} at once, all running"
                    if done
                    else f"docker: {size} at once, only {reached} with a heartbeat by",
                    seconds,
                    "s",
                    f"<= {target:g} s" if target else "",
                    (done and seconds <= target) if target else None,
                )
            )
            # The benchmark's process is the control plane (and its light polling client).
            results.append(Result(f"docker: {size} at once, control-plane CPU time", cpu, "s"))
        await asyncio.sleep(3)  # let the last instances settle to idle
        results += await _idle_cpu(settings.provisioning.deployment_id)
        # After the idle window, not 3 s after the last burst: idle is what the figure is about.
        rss, charged = await asyncio.to_thread(_idle_memory, settings.provisioning.deployment_id)
        results += [
            Result("docker: idle instance RSS (median)", rss, "MB", "<= 60 MB", rss <= 60),
            Result("docker: idle instance memory, as docker stats shows it", charged, "MiB"),
        ]
        return results


#: Processes of the engine on this host whose CPU time an idle org's container costs (``comm``,
#: at most 15 characters: ``containerd-shim-runc-v2`` shows as ``containerd-shim``). Children
#: they reaped (``runc`` for each exec of a health check) count in their own figures.
ENGINE_PROCESSES = frozenset({"dockerd", "containerd", "containerd-shim", "docker-proxy"})


def _engine_cpu_seconds() -> float:
    """CPU seconds the engine's processes on this host used so far, reaped children included."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() not in ENGINE_PROCESSES:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _containers_cpu_seconds(run_id: str) -> tuple[float, int]:
    """CPU seconds the run's containers used so far (the engine's stats), and how many."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        containers = _run_containers(client, run_id)
        total = 0
        for container in containers:
            answer: dict[str, Any] = container.stats(stream=False, one_shot=True)  # type: ignore[assignment]
            total += int(answer["cpu_stats"]["cpu_usage"]["total_usage"])
        return total / 1e9, len(containers)
    finally:
        client.close()


async def _idle_cpu(run_id: str) -> list[Result]:
    """CPU per idle org over :data:`IDLE_WINDOW` seconds, as a share of one core: the engine's
    (dockerd, containerd, the shims: health checks, log and network plumbing), the instances'
    own (heartbeats) and the control plane's (reconcile passes, heartbeat ingestion). Only when
    the engine runs on this host (its processes are visible)."""
    engine = _engine_cpu_seconds()
    if engine == 0:
        return [Result.skip("docker: idle CPU per org", "the engine is not on this host")]
    instances, count = await asyncio.to_thread(_containers_cpu_seconds, run_id)
    ours, started = time.process_time(), time.perf_counter()
    await asyncio.sleep(IDLE_WINDOW)
    elapsed = time.perf_counter() - started
    ours = time.process_time() - ours
    engine = _engine_cpu_seconds() - engine
    instances = (await asyncio.to_thread(_containers_cpu_seconds, run_id))[0] - instances
    share = 100.0 / (elapsed * max(count, 1))
    return [
        Result(f"docker: idle CPU per org ({count} orgs), engine", engine * share, "%"),
        Result(f"docker: idle CPU per org ({count} orgs), instance", instances * share, "%"),
        Result(f"docker: idle CPU per org ({count} orgs), control plane", ours * share, "%"),
    ]


def _idle_memory(run_id: str) -> tuple[float, float]:
    """Medians over up to 10 of the run's containers: the RSS of the instance's process (MB,
    10^6 bytes, as the target is written), and the container's memory without inactive page
    cache (MiB, what ``docker stats`` shows)."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        rss: list[float] = []
        charged: list[float] = []
        for container in _run_containers(client, run_id)[:10]:
            # The image's entrypoint is the instance's one process (no init in between).
            rss.append(rss_bytes(int(container.attrs["State"]["Pid"])) / 1e6)
            answer: dict[str, Any] = container.stats(stream=False, one_shot=True)  # type: ignore[assignment]
            stats = answer["memory_stats"]
            detail = stats.get("stats", {})
            # cgroup v2, then v1.
            cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
            charged.append((float(stats["usage"]) - float(cache)) / 2**20)
        return statistics.median(rss), statistics.median(charged)
    finally:
        client.close()


async def _bench_local(drive: Drive | None = None, **extra: str) -> list[Result]:
    """``drive`` (default: this module's) against a local-backend control plane; ``extra``
    settings (``WARM_POOL_SIZE="4"``) on top of the defaults."""
    return await bench_local(drive or _drive, **extra)


async def _bench_docker(
    drive: Drive | None = None,
    *,
    services: Callable[[str, str], dict[str, str]] | None = None,
    **extra: str,
) -> list[Result]:
    """As :func:`_bench_local`, on the docker backend (see :func:`bench_docker`)."""
    return await bench_docker(drive or _drive, services=services, **extra)


def run() -> list[Result]:
    """Measure every backend in ``BENCH_PROVISION_API_BACKENDS``."""
    results: list[Result] = []
    for backend in (b.strip() for b in BACKENDS):
        results += asyncio.run(_bench_docker() if backend == "docker" else _bench_local())
    return results


if __name__ == "__main__":
    print(f"{ORGS} orgs, bursts {BURSTS}, load average {os.getloadavg()[0]:.2f}")
    for result in run():
        print(f"{result.metric:<52} {result.value:>8.2f} {result.unit:<4} {result.target}")
