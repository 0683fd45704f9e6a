"""Traefik's kubernetescrd provider for real: Traefik 3.0.4 (``scripts/k8s/traefik.sh``; 3.5+
waits for EndpointSlice, which the 1.20 test cluster lacks) watches the real API server of
tests/support/kubecluster.py with a read-only token, loads the IngressRoute the kubernetes
backend made for an org, and routes the org's host to the org's pod (Traefik reaches the pod's
address, which the Endpoints controller published, on the kubelet engine's bridge). An unknown
host is Traefik's 404, and so is the org's host once the org is removed.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioners.base import ProvisionerOptions
from provisioners.kubernetes import KubernetesProvisioner
from tests.provisioners.harness import CLUSTER_RESOURCES, make_spec, wait_for_state
from tests.support.kubecluster import TRAEFIK_TOKEN, Cluster
from tests.support.services import need, traefik_kubernetes_binary
from tests.support.traefik import run_traefik, through
from tests.support.wait import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NAMESPACE = "orgplane-traefik"
HOST = "acme.k8s.test"

#: What Traefik's providers read, and nothing else (cluster-wide: it watches every namespace).
TRAEFIK_READER = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "orgplane-test-traefik"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["services", "endpoints", "secrets", "namespaces", "nodes"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": ["traefik.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "orgplane-test-traefik"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "orgplane-test-traefik",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "traefik"}],
    },
]


def _crd_provider(cluster: Cluster) -> list[str]:
    flags = [
        "--providers.kubernetescrd=true",
        f"--providers.kubernetescrd.endpoint={cluster.server}",
        f"--providers.kubernetescrd.token={TRAEFIK_TOKEN}",
        f"--providers.kubernetescrd.namespaces={NAMESPACE}",
    ]
    if cluster.ca_file:
        flags.append(f"--providers.kubernetescrd.certAuthFilePath={cluster.ca_file}")
    return flags


async def test_an_orgs_host_routes_through_traefik_to_its_pod(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    run_id = f"t-{uuid.uuid4().hex[:12]}"
    binary = traefik_kubernetes_binary()
    need("Traefik 3.0.4 (scripts/k8s/traefik.sh, run by make k8s and .ci/run)", binary is not None)
    kube_cluster.install_traefik_crds()
    kube_cluster.apply(TRAEFIK_READER)
    options = ProvisionerOptions(
        deployment_id=run_id,
        kubernetes_namespace=kube_cluster.namespace(NAMESPACE),
        kubernetes_ingress="ingressroute",
        entrypoints=("web",),
    )
    provisioner = KubernetesProvisioner(options=options, api_client=kube_cluster.api_client())
    spec = make_spec(run_id=run_id, hostnames=(HOST,), resources=CLUSTER_RESOURCES)
    try:
        await provisioner.apply(spec=spec)
        await wait_for_state(provisioner, spec.org_id, {"running"}, seconds=180)
        (route,) = await provisioner._ours("IngressRoute", spec.org_id)

        with run_traefik(tmp_path / "traefik", _crd_provider(kube_cluster), binary=binary) as t:
            router = f"{NAMESPACE}-{route['metadata']['name']}"

            def loaded() -> dict[str, Any] | None:
                found = [r for name, r in t.routers().items() if name.startswith(router)]
                return found[0] if found else None

            loaded_router = await eventually(loaded, what="the IngressRoute's router", timeout=60)
            assert loaded_router["provider"] == "kubernetescrd"
            assert loaded_router["rule"] == f"Host(`{HOST}`)"
            async with through(t, timeout=10) as client:

                async def served() -> Any:
                    answer = await client.get(f"http://{HOST}/healthz")
                    return answer if answer.status_code == 200 else None

                healthz = await eventually(served, what=f"{HOST} through Traefik", timeout=60)
                assert healthz.json() == {"status": "ok"}
                assert (await client.get("http://nobody.k8s.test/healthz")).status_code == 404

                await provisioner.remove(org_id=spec.org_id, keep_data=False)

                async def refused() -> bool:
                    try:
                        answer = await client.get(f"http://{HOST}/healthz")
                    except httpx.TransportError:
                        # Traefik still routes to the removed pod's address, where nothing
                        # answers: not refused yet (a read timed out once under a CPU hog).
                        return False
                    return answer.status_code == 404

                await eventually(refused, what=f"{HOST} gone from Traefik", timeout=60)
    finally:
        await provisioner.remove(org_id=spec.org_id, keep_data=False)
        await provisioner.close()
