"""The kubernetes backend on a real one-node cluster: from ``apply`` to ``running``.

The cluster is tests/support/kubecluster.py's (Kubernetes 1.20.2 built from Debian's source by
``scripts/k8s/build.sh``: API server, controllers, scheduler, and a kubelet on a Docker engine of
its own), or the one ``ORGPLANE_TEST_KUBECONFIG`` names. ``running`` is the backend's word: the
Deployment has a ready replica, i.e. the kubelet's readiness probe passed ``/readyz`` (it probes
every 5 s after the start-up probe passes, so the figure includes up to one probe period).

* **Single**: ``BENCH_K8S_ORGS`` (default 10) orgs applied one after another, each to
  ``running`` (status polled every 100 ms): p50 / p99 of the N.
* **At once**: ``BENCH_K8S_AT_ONCE`` (default 10) orgs applied concurrently: time until every
  one is ``running``.

Each pod asks for ``BENCH_K8S_CPU`` cores (default 0.15, so ten fit the 2-core node) and
256 MiB; data claims bind static hostPath volumes. Everything is removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from benchmarks import Result
from provisioners.base import ProvisionerOptions, Resources
from provisioners.kubernetes import KubernetesProvisioner
from tests.provisioners.harness import INSTANCE_IMAGE, make_spec

ORGS = int(os.environ.get("BENCH_K8S_ORGS", "10"))
AT_ONCE = int(os.environ.get("BENCH_K8S_AT_ONCE", "10"))
CPU = float(os.environ.get("BENCH_K8S_CPU", "0.15"))
TIMEOUT = 300.0
NAMESPACE = "orgplane-bench"
#: Left out of ``make bench`` unless named (see ``benchmarks/__main__.py``).
SLOW = "starts a Kubernetes cluster and about 20 pods: a few minutes"


async def _to_running(provisioner: KubernetesProvisioner, run_id: str) -> float:
    spec = make_spec(
        run_id=run_id, slug="bench", resources=Resources(cpu=CPU, memory_mb=256, storage_mb=256)
    )
    started = time.perf_counter()
    await provisioner.apply(spec=spec)
    while time.perf_counter() - started < TIMEOUT:
        status = await provisioner.status(org_id=spec.org_id)
        if status is not None and status.state == "running":
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"org not running within {TIMEOUT:g} s")


async def _remove_all(provisioner: KubernetesProvisioner) -> None:
    for status in await provisioner.list():
        await provisioner.remove(org_id=status.org_id, keep_data=False)


async def _bench(cluster: Any) -> list[Result]:
    run_id = f"bench-{uuid.uuid4().hex[:10]}"
    options = ProvisionerOptions(
        deployment_id=run_id,
        kubernetes_namespace=cluster.namespace(NAMESPACE),
        kubernetes_ingress="none",
    )
    provisioner = KubernetesProvisioner(options=options, api_client=cluster.api_client())
    try:
        single = []
        for _ in range(ORGS):
            single.append(await _to_running(provisioner, run_id))
        await _remove_all(provisioner)
        started = time.perf_counter()
        await asyncio.gather(*(_to_running(provisioner, run_id) for _ in range(AT_ONCE)))
        together = time.perf_counter() - started
    finally:
        await _remove_all(provisioner)
        await provisioner.close()
    return [
        Result.distribution(f"kubernetes: apply to running, one at a time (N={ORGS})", single, "s"),
        Result(f"kubernetes: {AT_ONCE} at once, all running", together, "s"),
    ]


def run() -> list[Result]:
    """Start (or use) the cluster, measure, stop it."""
    from tests.support import kubecluster

    own = os.environ.get("ORGPLANE_TEST_KUBECONFIG")
    if own:
        return asyncio.run(_bench(kubecluster.external(own)))
    missing = kubecluster.missing()
    if missing is not None:
        return [Result.skip("kubernetes: apply to running", f"missing {missing}")]
    cluster = kubecluster.start(images=(INSTANCE_IMAGE,))
    try:
        results = asyncio.run(_bench(cluster))
    finally:
        kubecluster.stop(cluster)
    return [Result("kubernetes: cluster start to a Ready node", cluster.started_in, "s"), *results]


if __name__ == "__main__":
    for result in run():
        print(f"{result.metric:<60} {result.value:>8.2f} {result.unit:<4} p99={result.p99}")
