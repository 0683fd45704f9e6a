"""The kubernetes backend against kmock's Kubernetes emulator, through the official client.

Proves, in per-org namespace mode: the first apply creates the Namespace and every object, all of
them valid (kubernetes-validate strict; IngressRoutes against the CRD); a second apply writes
nothing; a changed spec server-side-applies only the objects that changed; keep_data keeps the
volume claim and the namespace and nothing else; removal empties the namespace and deletes it.
Also: a create that meets an existing object of ours (409) adopts it; an object with our name
that is not ours stops the apply and is left untouched; a slug change moves the org to new names,
removes the old objects and keeps the data volume.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from org_instance.contract import Env
from provisioners.base import ProvisionerOptions
from provisioners.errors import PermanentProvisionerError
from provisioners.kubernetes import KubernetesProvisioner
from provisioners.kubernetes.client import KubeClient
from tests.provisioners.harness import make_spec
from tests.provisioners.kube import NamespacedEmulator, api_client, sent_objects, validate_object

pytestmark = pytest.mark.kmock(cls=NamespacedEmulator)

HOSTS = ("acme.orgs.example.com",)


def _writes(server: kmock.RawHandler) -> list[tuple[str, str]]:
    """(method, path) of every request that changed something."""
    return [
        (r.method.name, r.url.path) for r in server if r.method.name in ("POST", "PATCH", "DELETE")
    ]


def _live(server: kmock.RawHandler, kind: str) -> list[dict[str, Any]]:
    plural = {
        "Deployment": "deployments",
        "Secret": "secrets",
        "Service": "services",
        "PersistentVolumeClaim": "persistentvolumeclaims",
        "IngressRoute": "ingressroutes",
        "NetworkPolicy": "networkpolicies",
        "ResourceQuota": "resourcequotas",
    }[kind]
    return [
        obj.raw
        for (res, _, _), obj in server.objects.items()
        if res.plural == plural and not obj.deleted
    ]


@pytest.fixture
def provisioner(kmock: NamespacedEmulator, run_id: str) -> KubernetesProvisioner:
    options = ProvisionerOptions(deployment_id=run_id, kubernetes_namespace_mode="per-org")
    return KubernetesProvisioner(options=options, api_client=api_client(kmock))


async def test_per_org_lifecycle(
    kmock: NamespacedEmulator, provisioner: KubernetesProvisioner, run_id: str
) -> None:
    spec = make_spec(run_id=run_id, hostnames=HOSTS)
    status = await provisioner.apply(spec=spec)

    namespace = status.handle["namespace"]
    assert namespace in kmock.namespaces
    assert kmock.namespaces[namespace]["metadata"]["labels"]["orgplane.org-id"] == spec.org_id
    sent = sent_objects(kmock)
    assert sorted(o["kind"] for o in sent) == sorted(
        [
            "Namespace",
            "Secret",
            "PersistentVolumeClaim",
            "ResourceQuota",
            "NetworkPolicy",
            "Deployment",
            "Service",
            "IngressRoute",
        ]
    )
    for obj in sent:
        validate_object(obj)
    assert status.state == "creating"
    assert status.org_id == spec.org_id

    writes = len(_writes(kmock))
    await provisioner.apply(spec=spec)
    assert len(_writes(kmock)) == writes, "an unchanged spec wrote something"

    changed = dataclasses.replace(spec, env={**spec.env, Env.HEARTBEAT_INTERVAL: "5"})
    await provisioner.apply(spec=changed)
    new_writes = _writes(kmock)[writes:]
    assert [method for method, _ in new_writes] == ["PATCH"]
    assert "/deployments/" in new_writes[0][1]
    for obj in sent_objects(kmock):
        validate_object(obj)

    await provisioner.remove(org_id=spec.org_id, keep_data=True)
    assert [o["metadata"]["name"] for o in _live(kmock, "PersistentVolumeClaim")] == [
        spec.data_volume
    ]
    for kind in (
        "Deployment",
        "Secret",
        "Service",
        "IngressRoute",
        "NetworkPolicy",
        "ResourceQuota",
    ):
        assert _live(kmock, kind) == [], kind
    assert namespace in kmock.namespaces
    kept = await provisioner.status(org_id=spec.org_id)
    assert kept is not None
    assert kept.state == "absent"

    await provisioner.remove(org_id=spec.org_id, keep_data=False)
    assert _live(kmock, "PersistentVolumeClaim") == []
    assert namespace not in kmock.namespaces
    assert await provisioner.status(org_id=spec.org_id) is None
    await provisioner.remove(org_id=spec.org_id, keep_data=False)  # again: nothing to do


class _StaleReads(KubeClient):
    """Fault injection: every first read answers "absent", as a read just before another
    replica's create would."""

    def __init__(self, api: k8s.ApiClient) -> None:
        super().__init__(api)
        self.seen: set[tuple[str, str]] = set()

    def read(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        if (kind, name) not in self.seen:
            self.seen.add((kind, name))
            return None
        return super().read(kind, name, namespace)


async def test_a_create_that_meets_our_object_adopts_it(
    kmock: NamespacedEmulator, provisioner: KubernetesProvisioner, run_id: str
) -> None:
    spec = make_spec(run_id=run_id, hostnames=HOSTS)
    first = await provisioner.apply(spec=spec)
    writes = len(_writes(kmock))

    other = KubernetesProvisioner(options=provisioner.options, api_client=api_client(kmock))
    other.kube = _StaleReads(other.kube.api_client)
    second = await other.apply(spec=spec)

    conflicts = _writes(kmock)[writes:]
    assert conflicts
    assert all(method == "POST" for method, _ in conflicts)
    assert len(_live(kmock, "Deployment")) == 1
    assert second.handle == first.handle


async def test_an_object_with_our_name_that_is_not_ours_is_left_alone(
    kmock: NamespacedEmulator, run_id: str
) -> None:
    spec = make_spec(run_id=run_id)
    shared = ProvisionerOptions(deployment_id=run_id, kubernetes_namespace="team")
    squatter = KubernetesProvisioner(
        options=dataclasses.replace(shared, deployment_id=f"{run_id}-other"),
        api_client=api_client(kmock),
    )
    await squatter.apply(spec=spec)  # the same names, another deployment's labels
    writes = len(_writes(kmock))

    ours = KubernetesProvisioner(options=shared, api_client=api_client(kmock))
    with pytest.raises(PermanentProvisionerError, match="not this deployment's"):
        await ours.apply(spec=spec)
    await ours.remove(org_id=spec.org_id, keep_data=False)
    assert _writes(kmock)[writes:] == []
    assert await ours.status(org_id=spec.org_id) is None
    assert (await squatter.status(org_id=spec.org_id)) is not None


async def test_a_slug_change_moves_the_names_and_keeps_the_data(
    kmock: NamespacedEmulator, run_id: str
) -> None:
    options = ProvisionerOptions(deployment_id=run_id, kubernetes_namespace="orgs")
    provisioner = KubernetesProvisioner(options=options, api_client=api_client(kmock))
    spec = make_spec(run_id=run_id, slug="acme", hostnames=HOSTS)
    before = await provisioner.apply(spec=spec)
    after = await provisioner.apply(spec=dataclasses.replace(spec, slug="acme-corp"))

    assert before.handle["deployment"] != after.handle["deployment"]
    assert "acme-corp" in after.handle["deployment"]
    for kind in ("Deployment", "Service", "Secret", "IngressRoute"):
        names = [o["metadata"]["name"] for o in _live(kmock, kind)]
        assert names == [after.handle["deployment"]], (kind, names)
    assert [o["metadata"]["name"] for o in _live(kmock, "PersistentVolumeClaim")] == [
        spec.data_volume
    ]
    statuses = await provisioner.list()
    assert [s.org_id for s in statuses] == [spec.org_id]
