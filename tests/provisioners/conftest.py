"""Fixtures of the provisioner tests: a run id, a Docker client and sweep, and the ``harness``
fixture that runs the contract suite against every backend."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from provisioners import processes
from provisioners.base import InstanceStatus, ProvisionerOptions
from provisioners.naming import ORG_ID_LABEL
from tests.provisioners.harness import (
    CLUSTER_RESOURCES,
    INSTANCE_IMAGE,
    TEST_RUN_LABEL,
    Harness,
    kill_local_leftovers,
    pod_url,
)
from tests.provisioners.kube import api_client
from tests.support.kubecluster import Cluster
from tests.support.services import docker_available, need
from tests.support.wait import children_done_with_exec, eventually

BACKENDS = [
    "local",
    pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow]),
    pytest.param("kubernetes", marks=pytest.mark.kmock(cls=kmock.KubernetesEmulator)),
    # The same backend against a real API server with a kubelet (tests/support/kubecluster.py).
    pytest.param("cluster", marks=[pytest.mark.cluster, pytest.mark.slow]),
]
#: The real cluster's namespace for the contract suite (runs share it: names and labels are
#: per org and per run).
CLUSTER_NAMESPACE = "orgplane-contract"


@pytest.fixture
def run_id() -> str:
    """This test's deployment id: the managed-by label of everything it makes."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def docker_client() -> Iterator[Any]:
    """A client of the real Docker engine (fails under CI, skips elsewhere, when absent)."""
    need("Docker", docker_available())
    import docker

    client = docker.from_env(timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def instance_image(docker_client: Any) -> str:
    """The org instance image built by scripts/build-images.sh."""
    import docker

    try:
        docker_client.images.get(INSTANCE_IMAGE)
        present = True
    except docker.errors.ImageNotFound:
        present = False
    need(f"the image {INSTANCE_IMAGE} (build it with scripts/build-images.sh)", present)
    return INSTANCE_IMAGE


def sweep_docker(client: Any, run_id: str) -> None:
    """Remove exactly the containers and volumes labelled with this run."""
    label = {"label": [f"{TEST_RUN_LABEL}={run_id}"]}
    for container in client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for volume in client.volumes.list(filters=label):
        volume.remove(force=True)


@pytest.fixture
def docker_sweep(docker_client: Any, run_id: str) -> Iterator[None]:
    """Remove this run's containers and volumes after the test, whatever happened."""
    try:
        yield
    finally:
        sweep_docker(docker_client, run_id)


def _local(run_id: str, tmp_path: Path) -> Harness:
    from provisioners.local import LocalProvisioner

    async def count(org_id: str) -> int:
        # A process started a moment ago has no command line (hence no marker) until its exec
        # is done; counting then missed it (seen: 0 instead of 1 on a busy machine).
        await eventually(children_done_with_exec, what="children past exec", timeout=10)
        pids = [
            pid
            for deployment in (run_id, f"{run_id}-other")
            for pid in processes.find_by_marker(
                processes.marker(deployment_id=deployment, org_id=org_id)
            )
        ]
        infos = [processes.process_info(pid) for pid in pids]
        return sum(1 for info in infos if info is not None and not info.zombie)

    async def ready(_: InstanceStatus) -> None:
        return None

    options = ProvisionerOptions(deployment_id=run_id, data_root=tmp_path / "local")
    return Harness(
        "local",
        options,
        lambda o: LocalProvisioner(options=o, python=sys.executable),
        count,
        True,
        ready,
    )


def _docker(run_id: str, client: Any) -> Harness:
    from provisioners.docker import DockerProvisioner

    async def count(org_id: str) -> int:
        filters = {"label": [f"{ORG_ID_LABEL}={org_id}"]}
        return len(await asyncio.to_thread(client.containers.list, all=True, filters=filters))

    async def ready(_: InstanceStatus) -> None:
        return None

    options = ProvisionerOptions(deployment_id=run_id, docker_publish_ports=True)
    return Harness(
        "docker", options, lambda o: DockerProvisioner(options=o, client=client), count, True, ready
    )


def _kubernetes(run_id: str, server: kmock.RawHandler, clients: list[k8s.ApiClient]) -> Harness:
    from provisioners.kubernetes import KubernetesProvisioner

    def new_client() -> k8s.ApiClient:
        clients.append(api_client(server))
        return clients[-1]

    apps = k8s.AppsV1Api(new_client())

    async def count(org_id: str) -> int:
        try:
            answer = await asyncio.to_thread(apps.list_deployment_for_all_namespaces)
        except k8s.ApiException as exc:  # kmock: 404 until the first Deployment exists
            if exc.status != 404:
                raise
            return 0
        return sum(1 for d in answer.items if (d.metadata.labels or {}).get(ORG_ID_LABEL) == org_id)

    async def ready(status: InstanceStatus) -> None:
        # kmock runs no controllers: play the Deployment controller's part.
        body = {"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}}
        await asyncio.to_thread(
            apps.patch_namespaced_deployment,
            status.handle["deployment"],
            status.handle["namespace"],
            body,
        )

    options = ProvisionerOptions(deployment_id=run_id, kubernetes_namespace="orgplane-test")
    return Harness(
        "kubernetes",
        options,
        lambda o: KubernetesProvisioner(options=o, api_client=new_client()),
        count,
        False,
        ready,
    )


def _cluster(run_id: str, cluster: Cluster, clients: list[k8s.ApiClient]) -> Harness:
    """The kubernetes backend on the real cluster: pods really run, readiness is the
    kubelet's, and the instance is reached at its pod's address on the kubelet engine's
    bridge (the Service's DNS name resolves only inside the cluster)."""
    from provisioners.kubernetes import KubernetesProvisioner

    def new_client() -> k8s.ApiClient:
        clients.append(cluster.api_client())
        return clients[-1]

    apps, core = k8s.AppsV1Api(new_client()), k8s.CoreV1Api(new_client())

    async def count(org_id: str) -> int:
        selector = f"{ORG_ID_LABEL}={org_id}"
        answer = await asyncio.to_thread(
            apps.list_deployment_for_all_namespaces, label_selector=selector
        )
        return len(answer.items)

    async def ready(_: InstanceStatus) -> None:
        return None

    async def reach(status: InstanceStatus) -> str:
        return await pod_url(core, status)

    cluster.install_traefik_crds()  # org routes are IngressRoutes, as with Traefik installed
    options = ProvisionerOptions(
        deployment_id=run_id, kubernetes_namespace=cluster.namespace(CLUSTER_NAMESPACE)
    )
    return Harness(
        "cluster",
        options,
        lambda o: KubernetesProvisioner(options=o, api_client=new_client()),
        count,
        True,
        ready,
        reach=reach,
        spec_changes={"resources": CLUSTER_RESOURCES},
    )


#: Instances are counted per org id (unique per test), whichever deployment made them.
@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, run_id: str, tmp_path: Path) -> Iterator[Harness]:
    """Each backend in turn; everything the test made is removed afterwards."""
    clients: list[k8s.ApiClient] = []
    if request.param == "local":
        made = _local(run_id, tmp_path)
    elif request.param == "docker":
        client = request.getfixturevalue("docker_client")
        request.getfixturevalue("instance_image")
        made = _docker(run_id, client)
    elif request.param == "cluster":
        made = _cluster(run_id, request.getfixturevalue("kube_cluster"), clients)
    else:
        made = _kubernetes(run_id, request.getfixturevalue("kmock"), clients)
    try:
        yield made
    finally:
        if request.param == "local":
            kill_local_leftovers(sorted({p.options.deployment_id for p in made.made} | {run_id}))
        elif request.param == "docker":
            sweep_docker(request.getfixturevalue("docker_client"), run_id)
        for api in clients:
            api.close()


@pytest.fixture
async def cleanup_provisioners(harness: Harness) -> AsyncIterator[None]:
    """Remove every org each provisioner of the harness still lists, then close them."""
    yield
    for provisioner in harness.made:
        for status in await provisioner.list():
            await provisioner.remove(org_id=status.org_id, keep_data=False)
        await provisioner.close()
