"""The steps the ``kubernetes`` backend's operations are made of (see
:mod:`provisioners.kubernetes.provisioner`): find the objects of ours by label, make one exist
as built (created, adopted, server-side applied or refused), retire an org's other Deployments,
delete, and find the orgs that have objects but no Deployment."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from provisioners.base import InstanceStatus, ProvisionerOptions
from provisioners.errors import PermanentProvisionerError, RetryableProvisionerError
from provisioners.kubernetes.client import Conflict, KubeClient, Obj
from provisioners.naming import (
    MANAGED_BY_LABEL,
    ORG_ID_LABEL,
    SPEC_HASH_LABEL,
    is_ours,
    label_selector,
    stable_name,
)

T = TypeVar("T")
#: Kinds removed for an instance, in removal order; data and namespace are handled after them.
INSTANCE_KINDS: Final = (
    "IngressRoute",
    "Ingress",
    "Service",
    "Deployment",
    "NetworkPolicy",
    "ResourceQuota",
    "Secret",
)
#: Kinds whose leftovers (without a Deployment) still count as "objects of ours".
LEFTOVER_KINDS: Final = ("Secret", "PersistentVolumeClaim", "Service")
#: Seconds ``apply`` waits for a Deployment of another name to go before it retries later.
RETIRE_WAIT: Final = 5.0
RETIRE_POLL: Final = 0.25


class ObjectSteps:
    """The steps on one deployment's objects; :class:`KubernetesProvisioner` is made of them."""

    options: ProvisionerOptions
    kube: KubeClient

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _scope(self, org_id: str = "") -> str | None:
        """The namespace holding the org's objects (None: look in every namespace)."""
        if self.options.kubernetes_namespace_mode == "shared":
            return self.options.kubernetes_namespace
        return stable_name("orgplane-org", org_id) if org_id else None

    def _selector(self, org_id: str = "") -> str:
        labels = {MANAGED_BY_LABEL: self.options.deployment_id}
        if org_id:
            labels[ORG_ID_LABEL] = org_id
        return label_selector(labels)

    async def _ours(self, kind: str, org_id: str = "") -> builtins.list[Obj]:
        found = await self._run(
            self.kube.list, kind, self._scope(org_id), selector=self._selector(org_id)
        )
        ours = []
        for obj in found:  # list items carry no kind; the selector is checked again here
            labels = (obj.get("metadata") or {}).get("labels")
            if is_ours(labels, deployment_id=self.options.deployment_id, org_id=org_id):
                ours.append({**obj, "kind": kind})
        return ours

    # -- the interface -------------------------------------------------------------------------

    async def _ensure(
        self,
        obj: Obj,
        *,
        org_id: str,
        before_create: Callable[[Obj], Awaitable[None]] | None = None,
    ) -> bool:
        """Make ``obj`` exist as built; True when it was created now. ``before_create`` runs
        when it does not exist yet, before it is created."""
        kind, meta = obj["kind"], obj["metadata"]
        existing = await self._run(self.kube.read, kind, meta["name"], meta.get("namespace"))
        if existing is None:
            if before_create is not None:
                await before_create(obj)
            try:
                await self._run(self.kube.create, obj)
                return True
            except Conflict:  # made meanwhile: adopt it if it is ours
                existing = await self._run(
                    self.kube.read, kind, meta["name"], meta.get("namespace")
                )
                if existing is None:
                    raise RetryableProvisionerError(
                        f"{kind} {meta['name']} came and went"
                    ) from None
        existing_meta = existing.get("metadata") or {}
        where = f"{kind} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
        if not is_ours(
            existing_meta.get("labels"), deployment_id=self.options.deployment_id, org_id=org_id
        ):
            raise PermanentProvisionerError(
                f"{where} exists but is not this deployment's object of org {org_id}; "
                "it is left alone"
            )
        if kind == "Namespace" and (existing.get("status") or {}).get("phase") == "Terminating":
            raise RetryableProvisionerError(f"{where} is still being deleted")
        wanted_hash = meta["annotations"][SPEC_HASH_LABEL]
        if (existing_meta.get("annotations") or {}).get(SPEC_HASH_LABEL) != wanted_hash:
            await self._run(self.kube.apply, self._updatable(obj))
            if kind == "Secret":
                await self._drop_secret_keys(existing, obj)
        return False

    async def _drop_secret_keys(self, live: Obj, wanted: Obj) -> None:
        """Remove keys the Secret no longer has (a claimed spare's pool secret): an apply keeps
        data that its creation wrote. ``stringData`` too, for servers that keep it as sent."""
        keys = set(live.get("data") or {}) | set(live.get("stringData") or {})
        gone = dict.fromkeys(sorted(keys - set(wanted.get("stringData") or {})))
        if gone:
            meta = wanted["metadata"]
            patch = {"data": gone, "stringData": gone}
            await self._run(
                self.kube.merge_patch, "Secret", meta["name"], meta.get("namespace"), patch
            )

    @staticmethod
    def _updatable(obj: Obj) -> Obj:
        """What an update may send: a claim's spec is immutable apart from its size."""
        if obj["kind"] != "PersistentVolumeClaim":
            return obj
        size = obj["spec"]["resources"]
        return {**obj, "spec": {"resources": size}}

    async def _retire_other_deployments(self, deployment: Obj) -> None:
        """Delete the org's other Deployments (named by an earlier version, from the slug), and
        wait until they are gone, before ``deployment`` is created: Recreate across names, so
        two pods never share the org's SQLite volume. Still there after :data:`RETIRE_WAIT`
        seconds: a retryable error (the reconciler tries again later)."""
        meta = deployment["metadata"]
        org_id = meta["labels"][ORG_ID_LABEL]
        where = (meta["name"], meta.get("namespace"))
        others = [
            o
            for o in await self._ours("Deployment", org_id)
            if (o["metadata"]["name"], o["metadata"].get("namespace")) != where
        ]
        for other in others:
            await self._delete(other, propagation="Foreground")
        deadline = asyncio.get_running_loop().time() + RETIRE_WAIT
        for other in others:
            other_meta = other["metadata"]
            while await self._run(
                self.kube.read, "Deployment", other_meta["name"], other_meta.get("namespace")
            ):
                if asyncio.get_running_loop().time() > deadline:
                    raise RetryableProvisionerError(
                        f"the org's previous Deployment {other_meta['name']} is still stopping"
                    )
                await asyncio.sleep(RETIRE_POLL)

    async def _remove_stale(self, org_id: str, wanted: builtins.list[Obj]) -> None:
        keep = {(o["kind"], o["metadata"]["name"]) for o in wanted}
        for kind in INSTANCE_KINDS:
            for obj in await self._ours(kind, org_id):
                if (kind, obj["metadata"]["name"]) not in keep:
                    await self._delete(obj)

    async def _delete(self, obj: Obj, *, propagation: str = "Background") -> None:
        meta = obj.get("metadata") or {}
        await self._run(
            self.kube.delete,
            obj["kind"],
            meta["name"],
            meta.get("namespace"),
            propagation=propagation,
        )

    async def _leftovers(self, org_id: str = "") -> dict[str, InstanceStatus]:
        """Orgs with objects of ours but no Deployment (kept data, or a crash's leftovers).

        An object already being deleted does not count: a removed org's volume claim stays
        (``Terminating``, held by the server's pvc-protection finalizer) until its pod has
        stopped, but its removal is decided and under way."""
        found: dict[str, builtins.list[str]] = {}
        for kind in LEFTOVER_KINDS:
            for obj in await self._ours(kind, org_id):
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                found.setdefault(meta["labels"][ORG_ID_LABEL], []).append(f"{kind}/{meta['name']}")
        return {
            org: InstanceStatus(
                org_id=org,
                state="absent",
                handle={"objects": sorted(names)},
                message="no Deployment; other objects of the org remain",
                labels={ORG_ID_LABEL: org, MANAGED_BY_LABEL: self.options.deployment_id},
            )
            for org, names in found.items()
        }
