"""The kubernetes backend against a real cluster: runs only when ``KUBECONFIG`` is set.

No cluster can run on the project's machines, so here it is skipped (by design, also under CI:
it is the one test meant for a user who has a cluster). With one, it proves what kmock cannot:
the API server accepts every object, the pod really becomes ready (readyReplicas), and removal
leaves nothing of ours; and for a warm-pool spare, that the pod in pool mode becomes ready,
adopting the org leaves its Deployment at the same generation, and the org's next apply leaves
no pool secret in the Secret (server-side apply alone would keep it). Set
``ORGPLANE_TEST_INSTANCE_IMAGE`` to an image the cluster can pull, and
``ORGPLANE_TEST_NAMESPACE_MODE=per-org`` to try that mode (needs cluster-wide rights).
"""

from __future__ import annotations

import os

import pytest

from provisioners.base import ProvisionerOptions
from provisioners.kubernetes import KubernetesProvisioner
from tests.provisioners.harness import make_spare_spec, make_spec, wait_for_state
from tests.support.wait import eventually

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs KUBECONFIG (a cluster)"),
]


def _provisioner(run_id: str) -> KubernetesProvisioner:
    mode = os.environ.get("ORGPLANE_TEST_NAMESPACE_MODE", "shared")
    options = ProvisionerOptions(
        deployment_id=run_id,
        kubernetes_namespace_mode=mode,  # type: ignore[arg-type]
        kubernetes_namespace=os.environ.get("ORGPLANE_TEST_NAMESPACE", "default"),
        kubernetes_ingress="none",
    )
    return KubernetesProvisioner(options=options)


async def _remove(provisioner: KubernetesProvisioner, org_id: str) -> None:
    await provisioner.remove(org_id=org_id, keep_data=False)

    async def gone() -> bool:  # volume claims and namespaces finish deleting asynchronously
        return await provisioner.status(org_id=org_id) is None

    await eventually(gone, what=f"org {org_id} removed", timeout=120, interval=1)
    await provisioner.close()


async def test_an_instance_runs_in_a_real_cluster(run_id: str) -> None:
    provisioner = _provisioner(run_id)
    spec = make_spec(run_id=run_id)
    try:
        await provisioner.apply(spec=spec)
        running = await wait_for_state(provisioner, spec.org_id, {"running"}, seconds=300)
        assert running.endpoint.endswith(".svc:8000")
        assert [s.org_id for s in await provisioner.list()] == [spec.org_id]
    finally:
        await _remove(provisioner, spec.org_id)


async def test_a_spare_is_adopted_in_place_in_a_real_cluster(run_id: str) -> None:
    provisioner = _provisioner(run_id)
    spare = make_spare_spec(run_id=run_id)
    org = make_spec(run_id=run_id, org_id=spare.org_id)
    try:
        await provisioner.apply(spec=spare)
        await wait_for_state(provisioner, spare.org_id, {"running"}, seconds=300)
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
