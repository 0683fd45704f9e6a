"""The kubernetes backend against kmock's Kubernetes emulator, through the official client.

Proves, in per-org namespace mode: the first apply creates the Namespace and every object, all of
them valid (kubernetes-validate strict; IngressRoutes against the CRD); a second apply writes
nothing; a changed spec server-side-applies only the objects that changed; keep_data keeps the
volume claim and the namespace and nothing else; removal empties the namespace and deletes it.
Also: a create that meets an existing object of ours (409) adopts it; an object with our name
that is not ours stops the apply and is left untouched; names come from the org id, so a slug
change renames nothing, and objects named otherwise (an earlier release) are replaced with the old
Deployment gone before the new one comes; a claimed warm-pool spare becomes the org's (route,
Service, policy) without its pod being touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from orgplane_wire.contract import Env
from provisioners.base import ProvisionerOptions
from provisioners.errors import PermanentProvisionerError
from provisioners.kubernetes import KubernetesProvisioner
from provisioners.kubernetes.client import KubeClient
from provisioners.kubernetes.manifests import desired_objects
from provisioners.naming import instance_name
from tests.provisioners.harness import make_spare_spec, make_spec
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


async def test_a_slug_change_renames_nothing_and_keeps_the_data(
    kmock: NamespacedEmulator, run_id: str
) -> None:
    options = ProvisionerOptions(deployment_id=run_id, kubernetes_namespace="orgs")
    provisioner = KubernetesProvisioner(options=options, api_client=api_client(kmock))
    spec = make_spec(run_id=run_id, slug="acme", hostnames=HOSTS)
    before = await provisioner.apply(spec=spec)
    writes = len(_writes(kmock))
    after = await provisioner.apply(spec=dataclasses.replace(spec, slug="acme-corp"))

    assert before.handle["deployment"] == after.handle["deployment"]
    assert all(method == "PATCH" for method, _ in _writes(kmock)[writes:])
    for kind in ("Deployment", "Service", "Secret", "IngressRoute"):
        (live,) = _live(kmock, kind)
        assert live["metadata"]["name"] == after.handle["deployment"], kind
        assert live["metadata"]["labels"]["app.kubernetes.io/instance"].startswith(
            "orgplane-acme-corp-"
        ), kind
    assert [o["metadata"]["name"] for o in _live(kmock, "PersistentVolumeClaim")] == [
        spec.data_volume
    ]
    statuses = await provisioner.list()
    assert [s.org_id for s in statuses] == [spec.org_id]


async def test_a_deployment_of_another_name_goes_before_the_new_one_comes(
    kmock: NamespacedEmulator, run_id: str
) -> None:
    """Objects named as an earlier release named them (from the slug): the old Deployment is
    deleted, dependents first, before the new one is created, so two pods never share the
    org's volume; the other old objects are swept after."""
    options = ProvisionerOptions(deployment_id=run_id, kubernetes_namespace="orgs")
    provisioner = KubernetesProvisioner(options=options, api_client=api_client(kmock))
    spec = make_spec(run_id=run_id, slug="acme", hostnames=HOSTS)
    old_name = instance_name(slug=spec.slug, org_id=spec.org_id)
    kube = KubeClient(api_client(kmock))
    for obj in desired_objects(spec, options=options):
        if obj["kind"] in ("Deployment", "Service", "Secret"):
            renamed = {**obj, "metadata": {**obj["metadata"], "name": old_name}}
            await asyncio.to_thread(kube.create, renamed)  # the emulator serves on this loop
    writes = len(_writes(kmock))

    status = await provisioner.apply(spec=spec)

    done = _writes(kmock)[writes:]
    deleted = ("DELETE", f"/apis/apps/v1/namespaces/orgs/deployments/{old_name}")
    created = ("POST", "/apis/apps/v1/namespaces/orgs/deployments")
    assert done.index(deleted) < done.index(created), done
    (delete,) = [r for r in kmock if r.method.name == "DELETE" and r.url.path == deleted[1]]
    assert delete.url.query["propagationPolicy"] == "Foreground"
    for kind in ("Deployment", "Service", "Secret"):
        names = [o["metadata"]["name"] for o in _live(kmock, kind)]
        assert names == [status.handle["deployment"]], (kind, names)
    assert status.handle["deployment"] != old_name


async def test_a_claimed_spare_becomes_the_org_without_touching_its_pod(
    kmock: NamespacedEmulator, provisioner: KubernetesProvisioner, run_id: str
) -> None:
    spare = make_spare_spec(run_id=run_id)
    started = await provisioner.apply(spec=spare)
    (secret,) = _live(kmock, "Secret")
    assert secret["stringData"]["pool-secret"] == spare.env[Env.POOL_SECRET]
    (policy,) = _live(kmock, "NetworkPolicy")
    callers = policy["spec"]["ingress"][0]["from"]
    assert len(callers) == 2  # the ingress controller, and the control plane that assigns it
    assert _live(kmock, "IngressRoute") == []
    (deployment,) = _live(kmock, "Deployment")
    writes = len(_writes(kmock))

    org = make_spec(run_id=run_id, org_id=spare.org_id, hostnames=HOSTS)
    await provisioner.adopt(spec=org)

    touched = {path.split("/")[-2] for _, path in _writes(kmock)[writes:]}
    assert touched.isdisjoint({"deployments", "secrets", "persistentvolumeclaims"}), touched
    assert _live(kmock, "Deployment") == [deployment]
    assert _live(kmock, "Secret") == [secret]
    (route,) = _live(kmock, "IngressRoute")
    (service,) = _live(kmock, "Service")
    assert HOSTS[0] in route["spec"]["routes"][0]["match"]
    assert route["spec"]["routes"][0]["services"][0]["name"] == service["metadata"]["name"]
    assert service["metadata"]["labels"]["app.kubernetes.io/instance"].startswith("orgplane-acme-")
    (policy,) = _live(kmock, "NetworkPolicy")
    assert len(policy["spec"]["ingress"][0]["from"]) == 1  # the control plane is out again
    status = await provisioner.status(org_id=org.org_id)
    assert status is not None
    assert status.handle == started.handle
    assert status.endpoint == started.endpoint

    # The org's next apply (a generation bump) rolls the same Deployment with the org's own
    # environment, and the pool secret leaves the Secret.
    await provisioner.apply(spec=org)
    (rolled,) = _live(kmock, "Deployment")
    assert rolled["metadata"]["name"] == deployment["metadata"]["name"]
    names = {e["name"] for e in rolled["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert Env.POOL_SECRET not in names
    assert Env.ORG_SLUG in names
    (secret,) = _live(kmock, "Secret")
    assert "pool-secret" not in secret["stringData"]
    for obj in sent_objects(kmock):
        validate_object(obj)
