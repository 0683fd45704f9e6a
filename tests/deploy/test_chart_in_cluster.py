"""The control plane runs in the test cluster (Kubernetes 1.20.2, tests/support/kubecluster.py)
as the chart deploys it, with exactly the chart's service account and RBAC, and provisions an
org there through its API.

The chart is rendered with one replica and the local images, server-side applied (the migration
hook left out: the database is cloned from the suite's migrated template, which is what the hook
would have done), and the control-plane pod must become Ready. The cluster has no kube-proxy and
no cluster DNS, and the host's PostgreSQL and Redis listen on loopback only, so relays on the
host's address on the pods' bridge (tests/support/relay.py) stand in for the Services:
``KUBERNETES_SERVICE_HOST``/``_PORT`` (``extraEnv``) lead the in-cluster client to the API
server, the Secret's database and Redis URLs to the host's, and
``ORGPLANE_INSTANCE_CONTROL_PLANE_URL`` (``config``) leads the org instances to the control-plane
pod instead of the Service's DNS name. docs/deploy-kubernetes.md says the same. Nothing else:
the control plane's only credential is the token Kubernetes mounted for the chart's service
account.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from sqlalchemy.engine import make_url

from provisioners.naming import ORG_ID_LABEL
from provisioners.processes import free_port
from tests.deploy.helm_chart import only, render
from tests.e2e.api import ControlPlane, Org
from tests.e2e.images import CONTROL_PLANE_IMAGE
from tests.provisioners.harness import INSTANCE_IMAGE
from tests.support.db import create_postgres_database, drop_postgres_database
from tests.support.kubecluster import VERSION, Cluster
from tests.support.relay import Relay
from tests.support.services import REPO, need
from tests.support.wait import WaitTimeout, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.helm]

NAMESPACE = "orgplane-in-cluster"
BASE_DOMAIN = "orgplane.example.com"
ADMIN_EMAIL = f"admin@{BASE_DOMAIN}"
HOOK = "helm.sh/hook"
SELECTOR = "app.kubernetes.io/component=control-plane"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _redis(root: Path, gateway: str, password: str) -> tuple[subprocess.Popen[bytes], int]:
    """A Redis with ACLs on as compose runs it (``compose/redis-entrypoint.sh``: the default
    user off, ``orgplane`` the admin), listening on the bridge, where the pods reach it."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (root / "redis.log").open("ab") as log:
        proc = subprocess.Popen(
            ["sh", str(REPO / "compose" / "redis-entrypoint.sh"), "--bind", gateway,
             "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(root)],
            env={**os.environ, "REDIS_ADMIN_PASSWORD": password,
                 "REDIS_ACL_FILE": str(root / "users.acl")},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def answers() -> bool:
        ping = subprocess.run(
            ["redis-cli", "-h", gateway, "-p", str(port), "--user", "orgplane", "--pass",
             password, "--no-auth-warning", "ping"],
            capture_output=True, timeout=5, check=False,
        )  # fmt: skip
        return ping.stdout.strip() == b"PONG"

    wait_until(answers, what="the cluster's Redis", timeout=30, interval=0.1)
    return proc, port


def _image(name: str) -> dict[str, str]:
    repository, tag = name.rsplit(":", 1)
    return {"repository": repository, "tag": tag}


def _values(gateway: str, ports: dict[str, int], database: str, password: str) -> dict[str, Any]:
    url = make_url(database).set(host=gateway, port=ports["postgres"])
    return {
        "replicaCount": 1,
        "image": {**_image(CONTROL_PLANE_IMAGE), "pullPolicy": "Never"},
        "baseDomain": BASE_DOMAIN,
        "admin": {"email": ADMIN_EMAIL},
        "secrets": {
            "secretKey": secrets.token_hex(32),
            "databaseUrl": url.render_as_string(hide_password=False),
            "redisUrl": f"redis://orgplane:{password}@{gateway}:{ports['redis']}/0",
            "adminPassword": password,
        },
        "provisioner": {"instanceImage": _image(INSTANCE_IMAGE)},
        "expose": {"kind": "none"},
        # The test cluster's volumes are static 1 GiB ReadWriteOnce hostPaths; one replica.
        "backups": {"accessModes": ["ReadWriteOnce"], "size": "1Gi"},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "config": {
            "ORGPLANE_INSTANCE_CONTROL_PLANE_URL": f"http://{gateway}:{ports['control']}",
            "ORGPLANE_HEARTBEAT_INTERVAL": "2",
            "ORGPLANE_RECONCILE_INTERVAL": "0.5",
        },
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": gateway},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(ports["api"])},
        ],
    }


def _pod(cluster: Cluster, selector: str) -> dict[str, Any] | None:
    pods = yaml.safe_load(
        cluster.kubectl("-n", NAMESPACE, "get", "pod", "-l", selector, "-o", "yaml")
    )
    return pods["items"][0] if pods["items"] else None


def _ready(pod: dict[str, Any] | None) -> bool:
    conditions = (pod or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _ready_pod(cluster: Cluster, selector: str) -> dict[str, Any] | None:
    pod = _pod(cluster, selector)
    return pod if _ready(pod) else None


def _container(cluster: Cluster, pod: str) -> str:
    """The id of the control-plane container of ``pod`` on the kubelet's engine."""
    assert cluster.engine is not None
    found = subprocess.run(
        ["docker", "-H", cluster.engine, "ps", "-q",
         "--filter", f"label=io.kubernetes.pod.name={pod}",
         "--filter", "label=io.kubernetes.container.name=control-plane"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def _logs(cluster: Cluster) -> Callable[[], str]:
    """The control plane's last log lines (from the kubelet's engine), for failure messages."""

    def tail() -> str:
        assert cluster.engine is not None
        ids = subprocess.run(
            ["docker", "-H", cluster.engine, "ps", "-aq", "--filter",
             "label=io.kubernetes.container.name=control-plane",
             "--filter", f"label=io.kubernetes.pod.namespace={NAMESPACE}"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        lines = []
        for container in ids:
            done = subprocess.run(
                ["docker", "-H", cluster.engine, "logs", "--tail", "40", container],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            lines.append(done.stdout + done.stderr)
        return "\n".join(lines)

    return tail


def _status(call: Callable[[], Any]) -> int:
    try:
        call()
    except k8s.ApiException as exc:
        return int(exc.status)
    return 200


async def test_the_control_plane_provisions_an_org_in_the_cluster_as_the_charts_service_account(
    kube_cluster: Cluster, postgres_template: str | None, tmp_path: Path
) -> None:
    # The relays stand on the tests' own cluster's bridge: with a cluster of one's own
    # (ORGPLANE_TEST_KUBECONFIG) this test skips, and fails under CI=true like any missing part.
    need("the tests' own Kubernetes cluster (its bridge)", kube_cluster.gateway is not None)
    need("PostgreSQL", postgres_template is not None)
    present = subprocess.run(
        ["docker", "image", "inspect", CONTROL_PLANE_IMAGE], capture_output=True
    )
    need(f"the image {CONTROL_PLANE_IMAGE} (scripts/build-images.sh)", present.returncode == 0)
    kube_cluster.load(CONTROL_PLANE_IMAGE, INSTANCE_IMAGE)
    kube_cluster.install_traefik_crds()
    kube_cluster.namespace(NAMESPACE)
    gateway = kube_cluster.gateway
    api_port = int(kube_cluster.server.rsplit(":", 1)[1])
    pod_ip: list[str] = []
    relays = {
        "api": Relay(gateway, lambda: ("127.0.0.1", api_port)),
        "postgres": Relay(gateway, lambda: ("127.0.0.1", 5432)),
        "control": Relay(gateway, lambda: (pod_ip[0], 8080)),
    }
    password = secrets.token_hex(16)
    redis, redis_port = _redis(tmp_path / "redis", gateway, password)
    database, url = await create_postgres_database()
    ports = {name: relay.port for name, relay in relays.items()} | {"redis": redis_port}
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(_values(gateway, ports, url, password)))
    objects = render(values, kube_version=VERSION, namespace=NAMESPACE)
    account = only(objects, "ServiceAccount")["metadata"]["name"]
    logs = _logs(kube_cluster)
    control: ControlPlane | None = None
    try:
        kube_cluster.apply(
            [o for o in objects if HOOK not in (o["metadata"].get("annotations") or {})],
            namespace=NAMESPACE,
        )
        try:
            pod = wait_until(
                lambda: _ready_pod(kube_cluster, SELECTOR),
                what="the control-plane pod Ready", timeout=180, interval=0.5,
            )  # fmt: skip
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{logs()}") from None
        assert pod is not None
        assert pod["spec"]["serviceAccountName"] == account
        pod_ip.append(pod["status"]["podIP"])

        control = ControlPlane(f"http://{pod_ip[0]}:8080")
        control.login(ADMIN_EMAIL, password)
        org = control.create_org(f"kube-{uuid.uuid4().hex[:6]}", BASE_DOMAIN)
        _shows_running(kube_cluster, control, org, logs)

        # The token the control plane used is the one mounted for the chart's account; the
        # same token is refused what the chart's Role does not grant.
        assert kube_cluster.engine is not None
        token = subprocess.run(
            ["docker", "-H", kube_cluster.engine, "exec",
             _container(kube_cluster, pod["metadata"]["name"]), "cat", TOKEN_PATH],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        api = kube_cluster.api_client(token=token)
        core = k8s.CoreV1Api(api)
        listed = core.list_namespaced_pod(NAMESPACE, label_selector=f"{ORG_ID_LABEL}={org.id}")
        assert len(listed.items) == 1
        denied = {
            "read kube-system secrets": lambda: core.list_namespaced_secret("kube-system"),
            "delete the node": lambda: core.delete_node("orgplane-test-node"),
            "delete its own pod": lambda: core.delete_namespaced_pod(
                pod["metadata"]["name"], NAMESPACE
            ),
            "create a namespace": lambda: core.create_namespace(
                k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="x"))
            ),
        }
        assert {what: _status(call) for what, call in denied.items()} == dict.fromkeys(denied, 403)
    finally:
        if control is not None:
            control.close()
        kube_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        for relay in relays.values():
            relay.close()
        redis.kill()
        redis.wait(timeout=10)
        await drop_postgres_database(database)


def _shows_running(
    cluster: Cluster, control: ControlPlane, org: Org, logs: Callable[[], str]
) -> None:
    """The org's instance pod, made by the control plane, runs and heartbeats (``running``)."""
    control.wait_running([org], timeout=180, why=logs)
    body = control.instance(org)
    assert body["last_heartbeat_at"], body
    selector = f"{ORG_ID_LABEL}={org.id}"
    try:
        wait_until(lambda: _ready_pod(cluster, selector), what="the org's pod Ready", timeout=60)
    except WaitTimeout as exc:
        status = (_pod(cluster, selector) or {}).get("status")
        raise WaitTimeout(f"{exc}; its status: {status}") from None
    deployment = yaml.safe_load(
        cluster.kubectl(
            "-n", NAMESPACE, "get", "deploy", "-l", f"{ORG_ID_LABEL}={org.id}", "-o", "yaml"
        )
    )["items"][0]
    managers = {f["manager"] for f in deployment["metadata"]["managedFields"]}
    assert "orgplane" in managers, managers
