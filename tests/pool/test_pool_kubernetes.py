"""The warm pool on the kubernetes backend: a real control plane, kmock's Kubernetes API, and the
spare's pod run as a real instance process from the Deployment the backend wrote.

kmock runs no controllers and no kubelet, and this machine has no cluster network. The test plays
those parts, and only those: :class:`Kubelet` starts ``python -m org_instance`` with the pod
environment of each Deployment (values and ``secretKeyRef``\\ s resolved from the Secret the
backend wrote; a directory per volume claim; loopback instead of the pod's address) and marks the
Deployment ready; and, standing in for cluster DNS, the spare's recorded endpoint is pointed at
that process. Everything else is the product: the pool manager applies the spare's objects,
promotes it when its Deployment is ready, the org claims it, the reconciler posts the assignment
to the running spare and adopts it (IngressRoute, Service, NetworkPolicy), and the org runs on the
spare's pod, whose Deployment and Secret nobody wrote to.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from sqlalchemy import update

from control_plane.db.models import Spare
from orgplane_wire.contract import Env
from tests.instance.processes import child_env, free_port
from tests.pool.test_pool_local import create, spares, wait_pool
from tests.provisioners.kube import NamespacedEmulator, api_client, validate_object
from tests.reconciler.test_lifecycle_local import admin_headers, wait_phase
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.wait import eventually, wait_http

pytestmark = pytest.mark.kmock(cls=NamespacedEmulator)

BASE_DOMAIN = "orgs.example.com"


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


def _live(server: Any, plural: str) -> list[dict[str, Any]]:
    return [
        obj.raw
        for (res, _, _), obj in server.objects.items()
        if res.plural == plural and not obj.deleted
    ]


class Kubelet:
    """Runs each Deployment's pod as a local instance process (see the module docstring)."""

    def __init__(self, server: Any, volumes: Path) -> None:
        self.server, self.volumes = server, volumes
        self.apps = k8s.AppsV1Api(api_client(server))
        self.pods: dict[str, tuple[subprocess.Popen[bytes], str]] = {}

    def _secret(self, namespace: str, name: str) -> dict[str, str]:
        for secret in _live(self.server, "secrets"):
            meta = secret["metadata"]
            if (meta.get("namespace"), meta["name"]) == (namespace, name):
                return dict(secret.get("stringData") or {})
        raise AssertionError(f"no Secret {namespace}/{name}")

    def pod_env(self, deployment: dict[str, Any], port: int) -> dict[str, str]:
        namespace = deployment["metadata"]["namespace"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env: dict[str, str] = {}
        for entry in container["env"]:
            if "value" in entry:
                env[entry["name"]] = entry["value"]
                continue
            ref = entry["valueFrom"]["secretKeyRef"]
            value = self._secret(namespace, ref["name"]).get(ref["key"])
            if value is None:
                assert ref.get("optional"), entry
                continue
            env[entry["name"]] = value
        (claim,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        data = self.volumes / claim["persistentVolumeClaim"]["claimName"]
        data.mkdir(parents=True, exist_ok=True)
        # Loopback stands in for the pod's address and the Service's names.
        env |= {
            Env.DATA_DIR: str(data),
            Env.BIND_HOST: "127.0.0.1",
            Env.PORT: str(port),
            Env.INTERNAL_HOSTS: f"{env[Env.INTERNAL_HOSTS]},127.0.0.1",
        }
        return env

    async def run_new_pods(self) -> dict[str, str]:
        """Start a process for every Deployment without one; org id -> its loopback endpoint."""
        started = {}
        for deployment in _live(self.server, "deployments"):
            meta = deployment["metadata"]
            org_id = meta["labels"]["orgplane.org-id"]
            if org_id in self.pods:
                continue
            port = free_port()
            env = self.pod_env(deployment, port)
            proc = subprocess.Popen(
                [sys.executable, "-m", "org_instance"],
                env=child_env(**env),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            endpoint = f"http://127.0.0.1:{port}"
            self.pods[org_id] = (proc, endpoint)
            await asyncio.to_thread(wait_http, f"{endpoint}/healthz", proc=proc)
            body = {"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}}
            await asyncio.to_thread(
                self.apps.patch_namespaced_deployment, meta["name"], meta["namespace"], body
            )
            started[org_id] = endpoint
        return started

    def stop(self) -> None:
        for proc, _ in self.pods.values():
            proc.terminate()
        for proc, _ in self.pods.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
async def live(
    kmock: NamespacedEmulator,
    make_settings: Any,
    unused_tcp_port: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Any:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url)}}],
                "users": [{"name": "t", "user": {"token": "t"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "t"}}],
                "current-context": "kmock",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_PROVISIONER="kubernetes",
        ORGPLANE_KUBERNETES_NAMESPACE_MODE="per-org",
        ORGPLANE_KUBERNETES_INGRESS_NAMESPACE="edge",
        ORGPLANE_KUBERNETES_CONTROL_PLANE_NAMESPACE="orgplane",
        ORGPLANE_BASE_DOMAIN=BASE_DOMAIN,
        ORGPLANE_WARM_POOL_SIZE="1",
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    kubelet = Kubelet(kmock, tmp_path / "volumes")
    try:
        async with serve_control_plane(settings, unused_tcp_port) as app:
            base = f"http://127.0.0.1:{unused_tcp_port}"
            async with httpx.AsyncClient(base_url=base, timeout=20) as http:
                yield http, app, await admin_headers(app, http), kubelet
    finally:
        kubelet.stop()


async def _spare_with_a_pod(app: Any, kubelet: Kubelet) -> str:
    """Run the spare's pod; once the Deployment is ready the pool promotes the spare."""
    started = await eventually(
        kubelet.run_new_pods, what="a Deployment made by the pool", interval=0.2
    )
    (spare_id, endpoint) = started.popitem()
    async with app.state.runtime.sessions() as db:  # cluster DNS, played by loopback
        await db.exec(update(Spare).where(Spare.id == spare_id).values(endpoint=endpoint))
        await db.commit()
    return spare_id


async def test_an_org_claims_a_spare_pod_and_gets_its_route(live: Any) -> None:
    http, app, headers, kubelet = live
    spare_id = await _spare_with_a_pod(app, kubelet)
    pool = await wait_pool(http, headers, 1)
    assert (pool["provisioner"], pool["supported"], pool["size"]) == ("kubernetes", True, 1)
    assert set(await spares(app)) == {spare_id}
    assert _live(kubelet.server, "ingressroutes") == []
    (policy,) = _live(kubelet.server, "networkpolicies")
    assert len(policy["spec"]["ingress"][0]["from"]) == 2  # the control plane may assign it
    writes_before = len(list(kubelet.server))

    org_id = await create(http, headers, "kube-pooled")
    assert org_id == spare_id
    running = await wait_phase(http, headers, "kube-pooled", "running")
    assert "pool.assigned" in [e["kind"] for e in running["events"]]
    assert running["endpoint"] == kubelet.pods[org_id][1]

    # The spare's pod serves the org: adopted, not replaced.
    written = [
        r.url.path
        for r in list(kubelet.server)[writes_before:]
        if r.method.name in ("POST", "PATCH", "PUT", "DELETE")
    ]
    mine = [p for p in written if org_id in p or p.endswith(f"orgplane-org-{org_id}")]
    for path in mine:
        assert "/deployments/" not in path, path
        assert "/secrets/" not in path, path
        assert "/persistentvolumeclaims/" not in path, path
    (route,) = [
        r
        for r in _live(kubelet.server, "ingressroutes")
        if r["metadata"]["labels"]["orgplane.org-id"] == org_id
    ]
    validate_object(route)
    assert f"kube-pooled.{BASE_DOMAIN}" in route["spec"]["routes"][0]["match"]
    policies = [
        p
        for p in _live(kubelet.server, "networkpolicies")
        if p["metadata"]["labels"]["orgplane.org-id"] == org_id
    ]
    assert [len(p["spec"]["ingress"][0]["from"]) for p in policies] == [1]
    assert kubelet.pods[org_id][0].poll() is None  # the same process serves on
