"""Provisioning backends: from ``apply`` to a running instance answering ``/readyz``.

For the docker backend (the real engine, the ``orgplane-instance:dev`` image from
``scripts/build-images.sh``, ports published on 127.0.0.1) and the local backend:

* **One at a time**: ``BENCH_PROVISION_ORGS`` (default 10) orgs applied one after another. For
  each, the time ``apply`` takes (for docker it returns once the engine reports the container
  running) and the time from calling ``apply`` until ``GET /readyz`` on the reported endpoint
  first answers 200 (polled every 20 ms). Median and maximum.
* **At once** (docker): the same number of orgs applied concurrently; the time until every one
  answers ``/readyz``; then, from the engine's cgroup figures, the CPU time each instance used
  since its start (its boot, which bounds how many can start per second on N cores) and the
  memory it uses (page cache excluded).

Each container is limited to ``BENCH_PROVISION_CPU`` cores (default 0.5; the boot is CPU-bound,
so the limit shows in the figures) and 256 MiB. Instances point at an unreachable control plane
(their heartbeats fail and back off; readiness does not depend on them). Every container and
volume carries the label ``orgplane.test-run=<run id>`` and is removed at the end, whatever
happens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks import Result
from provisioners.base import Provisioner, ProvisionerOptions, Resources
from tests.provisioners.harness import INSTANCE_IMAGE, TEST_RUN_LABEL, make_spec

ORGS = int(os.environ.get("BENCH_PROVISION_ORGS", "10"))
#: CPU cores each instance may use (the docker backend's hard limit): boot is CPU-bound.
CPU = float(os.environ.get("BENCH_PROVISION_CPU", "0.5"))
BACKENDS = os.environ.get("BENCH_PROVISION_BACKENDS", "docker,local").split(",")
READY_TIMEOUT = 60.0
#: Left out of ``make bench`` unless named (see ``benchmarks/__main__.py``).
SLOW = "Docker and local instances started and removed: several minutes"


async def _until_ready(endpoint_of: Any, started: float) -> float:
    """Seconds from ``started`` until /readyz answers 200 (polled every 20 ms)."""
    deadline = started + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        while time.perf_counter() < deadline:
            endpoint = await endpoint_of()
            if endpoint:
                try:
                    if (await client.get(f"{endpoint}/readyz")).status_code == 200:
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.02)
    raise TimeoutError(f"not ready within {READY_TIMEOUT}s")


async def _provision_one(provisioner: Provisioner, run_id: str) -> tuple[float, float]:
    spec = make_spec(run_id=run_id, slug="bench")
    spec = dataclasses.replace(spec, resources=Resources(cpu=CPU, memory_mb=256, storage_mb=256))
    started = time.perf_counter()
    status = await provisioner.apply(spec=spec)
    applied = time.perf_counter() - started
    known = {"endpoint": status.endpoint}

    async def endpoint_of() -> str:
        if not known["endpoint"]:
            current = await provisioner.status(org_id=spec.org_id)
            known["endpoint"] = current.endpoint if current else ""
        return known["endpoint"]

    return applied, await _until_ready(endpoint_of, started)


def _provisioner(backend: str, run_id: str, data_root: Path) -> Provisioner:
    options = ProvisionerOptions(
        deployment_id=run_id, docker_publish_ports=True, data_root=data_root
    )
    if backend == "docker":
        from provisioners.docker import DockerProvisioner

        return DockerProvisioner(options=options)
    from provisioners.local import LocalProvisioner

    return LocalProvisioner(options=options)


async def _remove_all(provisioner: Provisioner) -> None:
    for status in await provisioner.list():
        await provisioner.remove(org_id=status.org_id, keep_data=False)


async def _usage(provisioner: Provisioner) -> tuple[float, float]:
    """Median memory (usage minus page cache, MiB) and CPU time used since start (s) of this
    run's containers, from the engine's stats."""
    import docker

    client = docker.from_env()
    try:
        memory, cpu = [], []
        for status in await provisioner.list():
            container = client.containers.get(status.handle["container_id"])
            stats = await asyncio.to_thread(container.stats, stream=False)
            figures = stats["memory_stats"]
            memory.append((figures["usage"] - figures.get("stats", {}).get("cache", 0)) / 2**20)
            cpu.append(stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9)
        return statistics.median(memory), statistics.median(cpu)
    finally:
        client.close()


async def _bench(backend: str) -> list[Result]:
    run_id = f"bench-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="orgplane-bench-") as tmp:
        provisioner = _provisioner(backend, run_id, Path(tmp))
        try:
            timings = [await _provision_one(provisioner, run_id) for _ in range(ORGS)]
            await _remove_all(provisioner)
            applied = [a for a, _ in timings]
            ready = [r for _, r in timings]
            results = [
                Result(f"{backend}: apply, median of {ORGS}", statistics.median(applied), "s"),
                Result(
                    f"{backend}: apply to /readyz, median of {ORGS}",
                    statistics.median(ready),
                    "s",
                    "< 1.5 s",
                    statistics.median(ready) < 1.5,
                ),
                Result(
                    f"{backend}: apply to /readyz, max of {ORGS}",
                    max(ready),
                    "s",
                    "< 4 s",
                    max(ready) < 4.0,
                ),
            ]
            if backend == "docker":
                started = time.perf_counter()
                await asyncio.gather(*(_provision_one(provisioner, run_id) for _ in range(ORGS)))
                together = time.perf_counter() - started
                memory, cpu = await _usage(provisioner)
                results += [
                    Result(
                        f"docker: {ORGS} at once, all answering /readyz",
                        together,
                        "s",
                        "< 8 s",
                        together < 8.0,
                    ),
                    Result("docker: CPU time of an instance since its start (median)", cpu, "s"),
                    Result("docker: memory per idle instance (median)", memory, "MiB"),
                ]
            return results
        finally:
            await _remove_all(provisioner)
            await provisioner.close()
            if backend == "docker":
                _sweep(run_id)


def _sweep(run_id: str) -> None:
    import docker

    client = docker.from_env()
    label = {"label": [f"{TEST_RUN_LABEL}={run_id}"]}
    for container in client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for volume in client.volumes.list(filters=label):
        volume.remove(force=True)
    client.close()


def run() -> list[Result]:
    """Measure every backend in ``BENCH_PROVISION_BACKENDS``."""
    results: list[Result] = []
    for backend in BACKENDS:
        results += asyncio.run(_bench(backend.strip()))
    return results


if __name__ == "__main__":
    load = os.getloadavg()[0]
    print(f"image {INSTANCE_IMAGE}, {ORGS} orgs, load average {load:.2f}")
    for result in run():
        print(f"{result.metric:<52} {result.value:>8.2f} {result.unit:<4} {result.target}")
