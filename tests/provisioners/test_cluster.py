"""The kubernetes backend against a real API server with a kubelet (tests/support/kubecluster.py:
Kubernetes 1.20.2 built from Debian's source, one node, started once per session; or the cluster
``ORGPLANE_TEST_KUBECONFIG`` names). Under CI a missing cluster fails these tests.

What kmock cannot show: the server accepts every object (its own validation, in both namespace
modes, NetworkPolicy and ResourceQuota included); the pod really starts and answers on its
address; ``running`` waits for the kubelet's readiness probe (a pod that is up but not ready stays
``starting``); the data claim really binds a volume; a Deployment deleted by hand is made again
by the next apply; removal deletes the claim after the pod and, in per-org mode, the namespace;
and for a warm-pool spare, adopting the org leaves its Deployment at the same generation and the
org's next apply leaves no pool secret in the Secret (server-side apply alone would keep it).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from orgplane_wire.contract import Env
from provisioners.base import InstanceStatus, ProvisionerOptions
from provisioners.kubernetes import KubernetesProvisioner
from provisioners.naming import ORG_ID_LABEL
from tests.provisioners.harness import (
    CLUSTER_RESOURCES,
    make_spare_spec,
    make_spec,
    pod_url,
    wait_for_state,
)
from tests.support.kubecluster import Cluster
from tests.support.wait import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NAMESPACE = "orgplane-cluster"


@pytest.fixture
async def kube(kube_cluster: Cluster) -> AsyncIterator[Any]:
    """An admin client of the cluster (closed after the test)."""
    api = kube_cluster.api_client()
    try:
        yield api
    finally:
        api.close()


def _provisioner(cluster: Cluster, run_id: str, mode: str = "shared") -> KubernetesProvisioner:
    options = ProvisionerOptions(
        deployment_id=run_id,
        kubernetes_namespace_mode=mode,  # type: ignore[arg-type]
        kubernetes_namespace=cluster.namespace(NAMESPACE) if mode == "shared" else "unused",
        kubernetes_ingress="none",
    )
    return KubernetesProvisioner(options=options, api_client=cluster.api_client())


def _spec(run_id: str, **changes: Any) -> Any:
    return make_spec(run_id=run_id, resources=CLUSTER_RESOURCES, **changes)


async def _remove(provisioner: KubernetesProvisioner, org_id: str) -> None:
    await provisioner.remove(org_id=org_id, keep_data=False)

    async def gone() -> bool:  # volume claims and namespaces finish deleting asynchronously
        return await provisioner.status(org_id=org_id) is None

    await eventually(gone, what=f"org {org_id} removed", timeout=120, interval=0.5)
    await provisioner.close()


async def _pvc(kube: Any, status: InstanceStatus) -> Any:
    core = k8s.CoreV1Api(kube)
    claims = await asyncio.to_thread(
        core.list_namespaced_persistent_volume_claim,
        status.handle["namespace"],
        label_selector=f"{ORG_ID_LABEL}={status.org_id}",
    )
    (claim,) = claims.items
    return claim


async def test_an_instance_runs_answers_and_its_claim_binds(
    kube_cluster: Cluster, kube: Any, run_id: str
) -> None:
    provisioner = _provisioner(kube_cluster, run_id)
    spec = _spec(run_id)
    try:
        await provisioner.apply(spec=spec)
        running = await wait_for_state(provisioner, spec.org_id, {"running"}, seconds=180)
        assert running.endpoint.endswith(".svc:8000")
        assert [s.org_id for s in await provisioner.list()] == [spec.org_id]

        claim = await _pvc(kube, running)
        assert claim.status.phase == "Bound"
        assert claim.spec.volume_name.startswith("test-pv-") or kube_cluster.run_dir is None
        base = await pod_url(k8s.CoreV1Api(kube), running)
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            assert (await client.get(f"{base}/healthz")).status_code == 200
            assert (await client.get(f"{base}/readyz")).status_code == 200
    finally:
        await _remove(provisioner, spec.org_id)


async def test_running_waits_for_the_readiness_probe(
    kube_cluster: Cluster, kube: Any, run_id: str
) -> None:
    """A pod whose Redis does not answer is live (/healthz 200) but not ready (/readyz 503):
    the org stays ``starting`` while its container runs; once its spec no longer names that
    Redis, the new pod becomes ready and the org ``running``."""
    provisioner = _provisioner(kube_cluster, run_id)
    spec = _spec(run_id)
    unready = dataclasses.replace(spec, env={**spec.env, Env.REDIS_URL: "redis://127.0.0.1:1/0"})
    core = k8s.CoreV1Api(kube)
    selector = f"{ORG_ID_LABEL}={spec.org_id}"
    try:
        await provisioner.apply(spec=unready)

        async def container_up() -> Any:
            pods = await asyncio.to_thread(
                core.list_namespaced_pod, NAMESPACE, label_selector=selector
            )
            for pod in pods.items:
                statuses = pod.status.container_statuses or []
                if statuses and statuses[0].started and pod.status.pod_ip:
                    return pod
            return None

        pod = await eventually(container_up, what="the container started", timeout=180)
        base = f"http://{pod.status.pod_ip}:8000"
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            assert (await client.get(f"{base}/healthz")).status_code == 200
            assert (await client.get(f"{base}/readyz")).status_code == 503
        # The kubelet never saw /readyz pass: the pod is not Ready, so neither is the org.
        pod = await asyncio.to_thread(core.read_namespaced_pod, pod.metadata.name, NAMESPACE)
        ready = [c.status for c in pod.status.conditions or () if c.type == "Ready"]
        assert ready == ["False"]
        status = await provisioner.status(org_id=spec.org_id)
        assert status is not None
        assert status.state == "starting"

        await provisioner.apply(spec=spec)
        await wait_for_state(provisioner, spec.org_id, {"running"}, seconds=180)
    finally:
        await _remove(provisioner, spec.org_id)


async def test_a_deployment_deleted_by_hand_comes_back(
    kube_cluster: Cluster, kube: Any, run_id: str
) -> None:
    provisioner = _provisioner(kube_cluster, run_id)
    spec = _spec(run_id)
    try:
        first = await provisioner.apply(spec=spec)
        apps = k8s.AppsV1Api(kube)
        await asyncio.to_thread(
            apps.delete_namespaced_deployment, first.handle["deployment"], NAMESPACE
        )
        drifted = await provisioner.status(org_id=spec.org_id)
        assert drifted is not None
        assert drifted.state == "absent"  # the claim, Secret and Service remain

        await provisioner.apply(spec=spec)
        running = await wait_for_state(provisioner, spec.org_id, {"running"}, seconds=180)
        assert running.handle == first.handle
    finally:
        await _remove(provisioner, spec.org_id)


async def test_per_org_namespace_objects_are_accepted_and_removed(
    kube_cluster: Cluster, kube: Any, run_id: str
) -> None:
    """Per-org mode: the Namespace, NetworkPolicy and ResourceQuota pass the server's own
    validation, the pod runs within the quota, and removal deletes the namespace (the claim
    goes after its pod: the server's pvc-protection finalizer holds it until then)."""
    provisioner = _provisioner(kube_cluster, run_id, mode="per-org")
    spec = _spec(run_id)
    try:
        await provisioner.apply(spec=spec)
        running = await wait_for_state(provisioner, spec.org_id, {"running"}, seconds=180)
        namespace = running.handle["namespace"]
        assert namespace.startswith("orgplane-org-")
        policies = kube_cluster.kubectl("-n", namespace, "get", "networkpolicy,resourcequota")
        assert "networkpolicy" in policies
        assert "resourcequota" in policies
    finally:
        await _remove(provisioner, spec.org_id)
    # Deleting it waits for its pod's graceful stop: requested is what the backend decides.
    phase = kube_cluster.kubectl(
        "get", "namespace", namespace, "--ignore-not-found", "-o", "jsonpath={.status.phase}"
    )
    assert phase in ("", "Terminating")


async def test_a_spare_is_adopted_in_place_in_a_real_cluster(
    kube_cluster: Cluster, run_id: str
) -> None:
    provisioner = _provisioner(kube_cluster, run_id)
    spare = dataclasses.replace(make_spare_spec(run_id=run_id), resources=CLUSTER_RESOURCES)
    org = _spec(run_id, org_id=spare.org_id)
    try:
        await provisioner.apply(spec=spare)
        await wait_for_state(provisioner, spare.org_id, {"running"}, seconds=180)
        (before,) = await provisioner._ours("Deployment", spare.org_id)
        await provisioner.adopt(spec=org)
        (after,) = await provisioner._ours("Deployment", spare.org_id)
        assert after["metadata"]["generation"] == before["metadata"]["generation"]

        await provisioner.apply(spec=org)
        (secret,) = await provisioner._ours("Secret", spare.org_id)
        assert "pool-secret" not in (secret.get("data") or {})
        assert set(secret.get("data") or {}) == {"instance-credential", "redis-url"}
    finally:
        await _remove(provisioner, spare.org_id)
