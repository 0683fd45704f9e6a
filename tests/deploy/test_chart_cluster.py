"""The chart on a real API server (Kubernetes 1.20.2, tests/support/kubecluster.py).

``helm template --kube-version 1.20.2`` renders it; the objects are server-side applied, so the
server's own validation, defaulting and admission judge them (the PodDisruptionBudget as the
policy/v1beta1 that 1.20 serves; the IngressRoute and Middleware of the TLS variant against
Traefik's CRDs). The migration Job, a pre-install hook, is left out: ``helm install`` runs it
before the rest and it needs the database. Then the chart's RBAC is proved against the server's
RBAC, as the chart's service account (impersonated by the admin): the kubernetes backend
creates, reads, lists, stops and removes an org, and what the chart did not grant is refused
with 403.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from provisioners.base import ProvisionerOptions
from provisioners.kubernetes import KubernetesProvisioner
from tests.deploy.helm_chart import CI_VALUES, DEFAULT_VALUES, of_kind, only, render
from tests.provisioners.harness import CLUSTER_RESOURCES, make_spec
from tests.support.kubecluster import VERSION, Cluster
from tests.support.wait import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.helm]

NAMESPACE = "orgplane-chart"
HOOK = "helm.sh/hook"


def _without_hooks(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if HOOK not in (o["metadata"].get("annotations") or {})]


def _refused(call: Callable[[], Any]) -> int:
    try:
        call()
    except k8s.ApiException as exc:
        return int(exc.status)
    return 200


async def test_the_chart_applies_and_its_service_account_can_do_exactly_the_backends_work(
    kube_cluster: Cluster,
) -> None:
    run_id = f"t-{uuid.uuid4().hex[:12]}"
    kube_cluster.install_traefik_crds()
    kube_cluster.namespace(NAMESPACE)
    objects = render(DEFAULT_VALUES, kube_version=VERSION, namespace=NAMESPACE)
    assert only(objects, "PodDisruptionBudget")["apiVersion"] == "policy/v1beta1"
    kube_cluster.apply(_without_hooks(objects), namespace=NAMESPACE)
    applied = kube_cluster.kubectl(
        "-n", NAMESPACE, "get", "pdb,role,rolebinding,sa,deploy", "-o", "name"
    )
    assert "poddisruptionbudget.policy/" in applied
    assert "role.rbac.authorization.k8s.io/" in applied

    # The TLS variant's IngressRoute and Middleware pass the real CRD schemas (a dry run).
    (tls_values,) = [p for p in CI_VALUES if p.name == "ingressroute-tls-values.yaml"]
    tls = render(tls_values, kube_version=VERSION, namespace=NAMESPACE)
    routes = [*of_kind(tls, "IngressRoute"), *of_kind(tls, "Middleware")]
    assert {r["kind"] for r in routes} == {"IngressRoute", "Middleware"}
    kube_cluster.apply(routes, namespace=NAMESPACE, dry_run=True)

    account = only(objects, "ServiceAccount")["metadata"]["name"]
    api = kube_cluster.api_client(impersonate=f"system:serviceaccount:{NAMESPACE}:{account}")
    options = ProvisionerOptions(
        deployment_id=run_id, kubernetes_namespace=NAMESPACE, kubernetes_ingress="ingressroute"
    )
    provisioner = KubernetesProvisioner(options=options, api_client=api)
    spec = make_spec(
        run_id=run_id, hostnames=("acme.orgplane.example.com",), resources=CLUSTER_RESOURCES
    )
    try:
        applied_status = await provisioner.apply(spec=spec)
        assert applied_status.state in {"creating", "starting", "running"}
        kinds = {
            k: await provisioner._ours(k, spec.org_id)
            for k in ("Secret", "Service", "Deployment", "IngressRoute", "PersistentVolumeClaim")
        }
        assert all(len(found) == 1 for found in kinds.values()), kinds
        assert [s.org_id for s in await provisioner.list()] == [spec.org_id]
        await provisioner.stop(org_id=spec.org_id)
        await provisioner.restart(org_id=spec.org_id)
        await provisioner.remove(org_id=spec.org_id, keep_data=False)

        async def gone() -> bool:
            return await provisioner.status(org_id=spec.org_id) is None

        await eventually(gone, what="the org removed as the service account", timeout=120)

        # Granted for instance logs (docs/operations.md): listing pods, reading their logs.
        core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
        await asyncio.to_thread(core.list_namespaced_pod, NAMESPACE)
        # Not granted: changing pods, ConfigMaps, other namespaces, namespaces, nodes, its RBAC.
        configmap = {"metadata": {"name": "x"}, "data": {}}
        denied = {
            "delete a pod": lambda: core.delete_namespaced_pod("x", NAMESPACE),
            "create configmap": lambda: core.create_namespaced_config_map(NAMESPACE, configmap),
            "read kube-system secrets": lambda: core.list_namespaced_secret("kube-system"),
            "list default secrets": lambda: core.list_namespaced_secret("default"),
            "create namespace": lambda: core.create_namespace({"metadata": {"name": "x"}}),
            "list nodes": lambda: core.list_node(),
            "edit its role": lambda: rbac.delete_namespaced_role(account, NAMESPACE),
        }
        answers = {what: await asyncio.to_thread(_refused, call) for what, call in denied.items()}
        assert answers == dict.fromkeys(denied, 403)
    finally:
        await provisioner.remove(org_id=spec.org_id, keep_data=False)
        await provisioner.close()
        kube_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
