"""Staged rollouts on the Kubernetes backend, against the real one-node cluster
(tests/support/kubecluster.py, the session's): three orgs with data, a good version that reaches
all of them in waves, then a broken one (an image whose entry point only sleeps: its pod never
gets ready) that pauses after its first wave, rolls its failed org back at once, and is rolled
back with every org's data intact and every org back on exactly its previous assignment.

The control plane runs on the host, listening also on the kubelet bridge's gateway where the
pods' heartbeats reach it. The cluster has no cluster DNS nor kube-proxy, so the instances'
``*.svc`` addresses (backups, the test's own reads) resolve to their pods in this process
(tests/support/cluster_dns.py). The two image tags are made in the kubelet's engine from the
instance image the cluster was started with, and removed afterwards. Plans ask for a whole core
per instance; the one-node cluster has two, so the test's instances ask for the contract
suite's share (``CLUSTER_RESOURCES``).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.reconciler import spec
from tests.backups.live import Live, admin_headers, read_data, wait_serving
from tests.fleet.rollout_live import (
    add_versions,
    broken_rollout_rolled_back,
    create_rollout,
    org_version,
    orgs_with_data,
    rollout,
    wait_rollout,
)
from tests.provisioners.harness import CLUSTER_RESOURCES, INSTANCE_IMAGE
from tests.support.cluster_dns import services_resolved
from tests.support.kubecluster import Cluster
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.services import need

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ORGS = 3
LABEL = "orgplane.helper=fleet"
BROKEN = f'FROM {INSTANCE_IMAGE}\nENTRYPOINT ["python", "-c", "import time; time.sleep(86400)"]\n'


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


def _engine(cluster: Cluster, *args: str, stdin: bytes | None = None) -> None:
    assert cluster.engine is not None
    subprocess.run(
        ["docker", "-H", cluster.engine, *args],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=300,
    )


@pytest.fixture
def cluster_world(kube_cluster: Cluster) -> Iterator[dict[str, str]]:
    """A namespace of the test's, the good and broken tags in the kubelet's engine."""
    need("the test cluster's own engine (not ORGPLANE_TEST_KUBECONFIG)", bool(kube_cluster.engine))
    run_id = f"t-{uuid.uuid4().hex[:10]}"
    good = f"orgplane-instance:rollout-good-{run_id}"
    broken = f"orgplane-instance:rollout-broken-{run_id}"
    _engine(kube_cluster, "tag", INSTANCE_IMAGE, good)
    try:
        _engine(
            kube_cluster, "build", "-q", "--label", LABEL, "-t", broken, "-", stdin=BROKEN.encode()
        )
        yield {
            "run_id": run_id,
            "good": good,
            "broken": broken,
            "namespace": kube_cluster.namespace(f"orgplane-fleet-{run_id}"),
        }
    finally:
        kube_cluster.kubectl("delete", "namespace", f"orgplane-fleet-{run_id}", check=False)
        for tag in (good, broken):
            subprocess.run(
                ["docker", "-H", str(kube_cluster.engine), "rmi", tag],
                capture_output=True,
                check=False,
                timeout=120,
            )


@pytest.fixture
def start(
    make_settings: Any,
    unused_tcp_port: int,
    tmp_path: Path,
    kube_cluster: Cluster,
    cluster_world: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    port, gateway = unused_tcp_port, kube_cluster.gateway
    assert gateway is not None
    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setitem(spec.PLAN_RESOURCES, "free", CLUSTER_RESOURCES)
    env = {
        **FAST_RECONCILER,
        "ORGPLANE_RECONCILE_INTERVAL": "1",
        "ORGPLANE_HEARTBEAT_INTERVAL": "2",
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_PROVISIONER": "kubernetes",
        "ORGPLANE_DEPLOYMENT_ID": cluster_world["run_id"],
        "ORGPLANE_INSTANCE_IMAGE": INSTANCE_IMAGE,
        "ORGPLANE_KUBERNETES_NAMESPACE": cluster_world["namespace"],
        "ORGPLANE_KUBERNETES_INGRESS": "none",
        "ORGPLANE_INSTANCE_CONTROL_PLANE_URL": f"http://{gateway}:{port}",
        "ORGPLANE_BACKUP_DIR": str(tmp_path / "backups"),
        "ORGPLANE_LEASE_SECONDS": "5",
    }

    @asynccontextmanager
    async def run() -> AsyncIterator[Live]:
        settings = make_settings(**env)
        with services_resolved(kube_cluster, monkeypatch):
            async with (
                serve_control_plane(settings, port, also_on=[gateway]) as app,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http,
            ):
                yield Live(http=http, app=app, admin=await admin_headers(app, http))

    return run


async def test_rollouts_on_the_kubernetes_cluster(
    start: Any, cluster_world: dict[str, str]
) -> None:
    slugs = [f"kube-{n}" for n in range(ORGS)]
    async with start() as live:
        await add_versions(
            live,
            {"v1": INSTANCE_IMAGE, "v2": cluster_world["good"], "v3": cluster_world["broken"]},
        )
        expected = await orgs_with_data(live, slugs, timeout=300, repeat=500)

        good = await create_rollout(
            live,
            to_version="v2",
            from_version="v1",
            target={"kind": "all"},
            waves=[1, "100%"],
            max_concurrent=2,
            health_deadline_seconds=240,
        )
        done = await wait_rollout(
            live, good["id"], lambda r: r["state"] == "finished", "v2 everywhere", timeout=600
        )
        assert done["counts"] == {"upgraded": ORGS}, done
        for slug in slugs:
            version = await org_version(live, slug)
            assert (version["reported_version"], version["image"]) == ("v2", cluster_world["good"])
            await wait_serving(live, slug, timeout=120)
            assert await read_data(live, slug) == expected[slug], slug

        await broken_rollout_rolled_back(
            live,
            orgs=ORGS,
            timeout=400,
            to_version="v3",
            max_concurrent=2,
            health_deadline_seconds=40,
        )
        for slug in slugs:
            await wait_serving(live, slug, timeout=180)
            assert await read_data(live, slug) == expected[slug], slug
            version = await org_version(live, slug)
            # Exactly the assignment it had before v3: the good rollout's image.
            assert (version["reported_version"], version["assigned_image"]) == (
                "v2",
                cluster_world["good"],
            )
        assert (await rollout(live, good["id"]))["state"] == "finished"
