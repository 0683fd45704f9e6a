"""Idle cost: what a running org that nobody uses costs, in CPU and memory, on Docker.

A real control plane (the one of :mod:`benchmarks.bench_provision_api`: SQLite, embedded mode,
the product's reconcile and heartbeat intervals) provisions ``BENCH_IDLE_ORGS`` (default 50; at
most 200, what one list request of the benchmark's client sees) orgs in bursts of
``BENCH_IDLE_BURST`` (10) and waits until every one is ``running``. After
``BENCH_IDLE_SETTLE`` (20) seconds of nothing, it measures for ``BENCH_IDLE_WINDOW`` (60)
seconds, without calling the engine meanwhile (its answers would cost the engine CPU this
measures):

* **instances**: CPU time (``utime + stime``, reaped children too) of each instance's process,
  read from this host's ``/proc`` (the image's entry point is the container's one process);
* **engine, per container**: the ``containerd-shim`` that runs each of the run's containers
  (the instance's parent), and the ``docker-proxy`` publishing its port (the benchmark
  publishes ports, as ``provision_api`` does; compose does not);
* **engine daemons**: ``dockerd`` and ``containerd``, whole-host figures: on a shared machine
  they include other users' containers, so the per-org share is an upper bound;
* **control plane**: this process's CPU time (the control plane and this benchmark's client,
  which sleeps during the window): reconcile passes and heartbeat ingestion.

Each is reported as a percentage of one core per org, and their sum as the target figure
(at most 0.1% of a core per idle org, issue 29). Then the memory of every instance: ``VmRSS``
(the target's figure: at most 40 MB), and its private part (USS, what one more org adds: the
rest is shared libraries and the image's files, in memory once for all containers), median
over all instances.

Needs the engine on this host and the instance image (``ORGPLANE_TEST_INSTANCE_IMAGE``,
default ``orgplane-instance:dev``). Everything the run creates carries its labels and is
removed at the end, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time
from pathlib import Path

from benchmarks import Result, rss_bytes, uss_bytes
from benchmarks.bench_provision_api import (
    TEST_RUN_LABEL,
    _Admin,
    _at_once,
    _bench_docker,
    _run_containers,
    admin_session,
)
from control_plane.settings import Settings

ORGS = min(200, int(os.environ.get("BENCH_IDLE_ORGS", "50")))
BURST = max(1, int(os.environ.get("BENCH_IDLE_BURST", "10")))
SETTLE = float(os.environ.get("BENCH_IDLE_SETTLE", "20"))
WINDOW = float(os.environ.get("BENCH_IDLE_WINDOW", "60"))
#: ``1``: a Redis container on the run's network, as compose deploys (heartbeats and revocations
#: over Redis, each org its own ACL user); its server's CPU counts too.
REDIS = os.environ.get("BENCH_IDLE_REDIS", "") == "1"
REDIS_IMAGE = os.environ.get("BENCH_IDLE_REDIS_IMAGE", "orgplane-redis:dev")
#: Left out of ``make bench`` unless named (see ``benchmarks/__main__.py``).
SLOW = "50 Docker instances started, then a minute of idling: about three minutes"
CPU_TARGET = 0.1  # % of one core per idle org, all parts together
RSS_TARGET = 40.0  # MB (10^6 bytes) per idle instance
TICKS = os.sysconf("SC_CLK_TCK")
DAEMONS = frozenset({"dockerd", "containerd"})


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu(pid: int) -> float:
    """CPU seconds of ``pid`` so far, its reaped children included (0 once it is gone)."""
    try:
        return sum(int(v) for v in _stat(pid)[11:15]) / TICKS
    except OSError:
        return 0.0


def _processes() -> dict[int, tuple[str, int, str]]:
    """Every process on this host: pid -> (comm, parent pid, command line)."""
    found: dict[int, tuple[str, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
                parent = int(_stat(int(entry.name))[1])
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):
                continue
            found[int(entry.name)] = (comm, parent, cmdline)
    return found


def _redis(run_id: str, network: str) -> dict[str, str]:
    """Start Redis on the run's network (labelled with the run); the settings that use it."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        container = client.containers.run(
            REDIS_IMAGE,
            ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
            detach=True,
            network=network,
            labels={TEST_RUN_LABEL: run_id},
        )
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    finally:
        client.close()
    return {"REDIS_URL": f"redis://{address}:6379/0"}


def _groups(run_id: str) -> dict[str, list[int]]:
    """The pids whose CPU the window measures: the run's instances, their shims and port
    proxies, the engine's daemons and (with :data:`REDIS`) the Redis server."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        containers = _run_containers(client, run_id)
        selector: dict[str, str | list[str] | bool] = {"label": [f"{TEST_RUN_LABEL}={run_id}"]}
        redis = [int(c.attrs["State"]["Pid"]) for c in client.containers.list(filters=selector)]
        instances = [int(c.attrs["State"]["Pid"]) for c in containers]
        addresses = {
            net["IPAddress"]
            for c in containers
            for net in c.attrs["NetworkSettings"]["Networks"].values()
            if net.get("IPAddress")
        }
    finally:
        client.close()
    table = _processes()
    shims = sorted({table[pid][1] for pid in instances if pid in table})
    proxies = [
        pid
        for pid, (comm, _, cmdline) in table.items()
        if comm == "docker-proxy" and any(f" {ip} " in f"{cmdline} " for ip in addresses)
    ]
    daemons = [pid for pid, (comm, _, _) in table.items() if comm in DAEMONS]
    return {
        "instances": instances,
        "shims": shims,
        "proxies": proxies,
        "daemons": daemons,
        "redis": redis,
    }


def _memory(pids: list[int]) -> tuple[float, float]:
    """Median ``VmRSS`` and median USS (private clean + dirty) of ``pids``, in MB."""
    rss, uss = [], []
    for pid in pids:
        rss.append(rss_bytes(pid) / 1e6)
        uss.append(uss_bytes(pid) / 1e6)
    return statistics.median(rss), statistics.median(uss)


async def _provision(admin: _Admin) -> float:
    """Create :data:`ORGS` orgs in bursts of :data:`BURST`; seconds until all were running."""
    started, done = time.perf_counter(), 0
    while done < ORGS:
        size = min(BURST, ORGS - done)
        _, reached = await _at_once(admin, f"idle{done:03d}", size)
        if reached != size:
            raise RuntimeError(f"only {reached} of {size} orgs reached running")
        done += size
    return time.perf_counter() - started


async def _drive(settings: Settings, sockets: list[socket.socket], backend: str) -> list[Result]:
    run_id = settings.provisioning.deployment_id
    async with admin_session(settings, sockets) as admin:
        provisioned = await _provision(admin)
        await asyncio.sleep(SETTLE)
        groups = await asyncio.to_thread(_groups, run_id)
        if len(groups["instances"]) != ORGS:
            raise RuntimeError(f"{len(groups['instances'])} instances running, not {ORGS}")
        before = {name: sum(_cpu(p) for p in pids) for name, pids in groups.items()}
        ours, started = time.process_time(), time.perf_counter()
        await asyncio.sleep(WINDOW)
        elapsed = time.perf_counter() - started
        spent = {name: sum(_cpu(p) for p in pids) - before[name] for name, pids in groups.items()}
        spent["control plane"] = time.process_time() - ours
        rss, uss = await asyncio.to_thread(_memory, groups["instances"])
    share = {name: 100.0 * seconds / (elapsed * ORGS) for name, seconds in spent.items()}
    total = sum(share.values())
    how = "Redis" if REDIS else "HTTP"
    return [
        Result(
            f"docker: {ORGS} orgs provisioned ({how} heartbeats), all running", provisioned, "s"
        ),
        Result(f"idle CPU per org ({ORGS} orgs, {WINDOW:g} s): instance", share["instances"], "%"),
        Result("idle CPU per org: engine, the container's shim", share["shims"], "%"),
        Result("idle CPU per org: engine, docker-proxy of its port", share["proxies"], "%"),
        Result("idle CPU per org: dockerd + containerd (whole host)", share["daemons"], "%"),
        Result("idle CPU per org: control plane", share["control plane"], "%"),
        Result("idle CPU per org: Redis server", share["redis"], "%"),
        Result(
            "idle CPU per org: total",
            total,
            "%",
            f"<= {CPU_TARGET:g}% core",
            total <= CPU_TARGET,
        ),
        Result("idle instance RSS (median)", rss, "MB", f"<= {RSS_TARGET:g} MB", rss <= RSS_TARGET),
        Result("idle instance private memory, USS (median)", uss, "MB"),
    ]


def run() -> list[Result]:
    """Provision, idle, measure; see the module docstring."""
    results: list[Result] = asyncio.run(_bench_docker(_drive, services=_redis if REDIS else None))
    return results


if __name__ == "__main__":
    print(f"{ORGS} orgs, load average {os.getloadavg()[0]:.2f}")
    for result in run():
        print(f"{result.metric:<58} {result.value:>8.3f} {result.unit:<4} {result.target}")
