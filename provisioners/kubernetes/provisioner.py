"""The ``kubernetes`` backend's I/O: the official client, run off the event loop.

``apply`` walks the objects :func:`~provisioners.kubernetes.manifests.desired_objects` builds:
an object that is missing is created (409: adopted), one whose ``orgplane.spec-hash`` differs is
server-side applied, one that matches is left alone, and one that exists but is not ours stops
the apply with a permanent error. Status, removal and listing find objects by label, so an org
whose slug (and so whose object names) changed is still found, and its stale objects removed.
The steps these operations are made of are in :mod:`provisioners.kubernetes.steps`.
"""

from __future__ import annotations

import asyncio
import builtins
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

from kubernetes import client as k8s

from provisioners.base import InstanceSpec, InstanceStatus, Provisioner, ProvisionerOptions
from provisioners.errors import PermanentProvisionerError
from provisioners.kubernetes.client import KubeClient, Obj, load_api_client
from provisioners.kubernetes.deployment_status import deployment_status
from provisioners.kubernetes.manifests import desired_objects
from provisioners.kubernetes.steps import INSTANCE_KINDS as INSTANCE_KINDS
from provisioners.kubernetes.steps import LEFTOVER_KINDS as LEFTOVER_KINDS
from provisioners.kubernetes.steps import ObjectSteps
from provisioners.logstream import lines_of, pumped
from provisioners.naming import SPEC_HASH_LABEL, check_org_id, is_ours

#: What the running pod is made of: a claimed spare keeps these as the spare made them.
POD_KINDS: Final = frozenset({"Deployment", "Secret", "PersistentVolumeClaim"})


class KubernetesProvisioner(ObjectSteps, Provisioner):
    """Org instances as Kubernetes objects (see the module docstring).

    ``api_client`` injects a configured ``kubernetes.client.ApiClient`` (tests, or a caller with
    its own configuration); by default the in-cluster configuration is used, else the
    kubeconfig.
    """

    name = "kubernetes"

    def __init__(
        self, *, options: ProvisionerOptions, api_client: k8s.ApiClient | None = None
    ) -> None:
        super().__init__(options=options)
        self._owns_client = api_client is None
        self.kube = KubeClient(api_client or load_api_client())
        self._locks: dict[str, asyncio.Lock] = {}

    # -- the interface -------------------------------------------------------------------------

    async def apply(self, *, spec: InstanceSpec) -> InstanceStatus:
        """See :meth:`Provisioner.apply`."""
        async with self._locks.setdefault(spec.org_id, asyncio.Lock()):
            wanted = desired_objects(spec, options=self.options)
            created_deployment = False
            for obj in wanted:
                is_deployment = obj["kind"] == "Deployment"
                hook = self._retire_other_deployments if is_deployment else None
                created = await self._ensure(obj, org_id=spec.org_id, before_create=hook)
                created_deployment |= created and is_deployment
            if created_deployment:  # a first start, or a new name: sweep older objects
                await self._remove_stale(spec.org_id, wanted)
            deployment = next(o for o in wanted if o["kind"] == "Deployment")
            live = await self._run(
                self.kube.read,
                "Deployment",
                deployment["metadata"]["name"],
                deployment["metadata"]["namespace"],
            )
            return deployment_status(live or deployment, options=self.options)

    async def adopt(self, *, spec: InstanceSpec) -> None:
        """See :meth:`Provisioner.adopt`: every object but the pod's own is brought to ``spec``.

        The spare's objects already carry the org's names (they derive from the org id), so this
        adds the org's IngressRoute or Ingress, relabels the Service, and in ``per-org`` mode
        applies the org's NetworkPolicy (which no longer lets the control plane in) and quota.
        The Deployment, its Secret and the data volume stay as the spare made them: the pod
        keeps running, and a restart comes back as the org from its assignment file.
        """
        async with self._locks.setdefault(spec.org_id, asyncio.Lock()):
            for obj in desired_objects(spec, options=self.options):
                if obj["kind"] not in POD_KINDS:
                    await self._ensure(obj, org_id=spec.org_id)

    async def status(self, *, org_id: str) -> InstanceStatus | None:
        """See :meth:`Provisioner.status`."""
        deployments = await self._ours("Deployment", check_org_id(org_id))
        if deployments:
            return deployment_status(deployments[0], options=self.options)
        leftovers = await self._leftovers(org_id)
        return leftovers.get(org_id)

    async def logs(
        self,
        *,
        org_id: str,
        since: datetime | None = None,
        tail: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[str]:
        """See :meth:`Provisioner.logs`: the log of the org's pod (the running one, else the
        newest), as the API server's ``pods/log`` gives it. ``since`` is rounded down to whole
        seconds, the API's unit."""
        pods = await self._ours("Pod", check_org_id(org_id))
        if not pods:
            raise PermanentProvisionerError(f"org {org_id} has no pod")
        pod = max(pods, key=_pod_rank)
        meta = pod["metadata"]
        since_seconds = None
        if since is not None:
            ago = (datetime.now(UTC) - since).total_seconds()
            if ago < 0 and not follow:
                return  # nothing was logged after a time still to come
            since_seconds = max(1, math.ceil(ago))
        response = await self._run(
            self.kube.pod_log,
            meta["name"],
            meta["namespace"],
            tail=tail,
            since_seconds=since_seconds,
            follow=follow,
        )
        if response is None:
            raise PermanentProvisionerError(f"the pod of org {org_id} is gone")

        def close() -> None:
            response.close()
            response.release_conn()

        chunks = response.stream(4096, decode_content=True)
        async for line in lines_of(pumped(chunks, close)):
            yield line

    async def remove(self, *, org_id: str, keep_data: bool) -> None:
        """See :meth:`Provisioner.remove`."""
        async with self._locks.setdefault(org_id, asyncio.Lock()):
            kinds = INSTANCE_KINDS if keep_data else (*INSTANCE_KINDS, "PersistentVolumeClaim")
            for kind in kinds:
                for obj in await self._ours(kind, check_org_id(org_id)):
                    await self._delete(obj)
            if keep_data or self.options.kubernetes_namespace_mode != "per-org":
                return
            namespace = await self._run(self.kube.read, "Namespace", self._scope(org_id), None)
            if namespace is not None and is_ours(
                namespace["metadata"].get("labels"),
                deployment_id=self.options.deployment_id,
                org_id=org_id,
            ):
                await self._delete(namespace)

    async def list(self) -> builtins.list[InstanceStatus]:
        """See :meth:`Provisioner.list`: Deployments of ours, then orgs with only leftovers."""
        statuses: dict[str, InstanceStatus] = {}
        for deployment in await self._ours("Deployment"):
            status = deployment_status(deployment, options=self.options)
            statuses.setdefault(status.org_id, status)
        for org_id, status in (await self._leftovers()).items():
            statuses.setdefault(org_id, status)
        return [statuses[org_id] for org_id in sorted(statuses)]

    async def stop(self, *, org_id: str) -> None:
        """Scale the Deployment to zero; everything else stays. ``apply`` scales it back."""
        for deployment in await self._ours("Deployment", check_org_id(org_id)):
            meta = deployment["metadata"]
            # A stale hash makes the next apply send the whole Deployment (replicas 1) again.
            patch = {
                "metadata": {"annotations": {SPEC_HASH_LABEL: "stopped"}},
                "spec": {"replicas": 0},
            }
            await self._run(
                self.kube.merge_patch, "Deployment", meta["name"], meta["namespace"], patch
            )

    async def restart(self, *, org_id: str) -> InstanceStatus:
        """Roll the pod, as ``kubectl rollout restart`` does."""
        deployments = await self._ours("Deployment", check_org_id(org_id))
        if not deployments:
            raise PermanentProvisionerError(f"org {org_id} has no Deployment to restart")
        meta = deployments[0]["metadata"]
        now = datetime.now(UTC).isoformat()
        patch = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}
                }
            }
        }
        live = await self._run(
            self.kube.merge_patch, "Deployment", meta["name"], meta["namespace"], patch
        )
        return deployment_status(live or deployments[0], options=self.options)

    async def close(self) -> None:
        """Close the API client if this provisioner made it."""
        if self._owns_client:
            await self._run(self.kube.close)


def _pod_rank(pod: Obj) -> tuple[bool, str]:
    """Running pods first, then the newest (a rollout's old and new pod may both exist)."""
    phase = (pod.get("status") or {}).get("phase", "")
    return phase == "Running", str(pod["metadata"].get("creationTimestamp") or "")
