"""The ``docker`` backend's I/O: the docker SDK, run off the event loop.

One container and one named volume per org, both labelled as ours; :mod:`.container_spec` says
what they look like. Containers are found by labels, not names. A container whose spec
fingerprint differs from the wanted one is replaced (containers cannot be changed in place); its
volume, and so its data, stays.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import docker
import requests
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container

from provisioners.base import InstanceSpec, InstanceStatus, Provisioner, ProvisionerOptions
from provisioners.docker.container_spec import container_kwargs, volume_labels
from provisioners.docker.container_status import inspect_attrs, settled, status_of
from provisioners.docker.engine import check_image, explain, off_loop, pull
from provisioners.docker.watch import EngineWatch
from provisioners.errors import (
    PermanentProvisionerError,
    RetryableProvisionerError,
)
from provisioners.logstream import lines_of, pumped
from provisioners.naming import (
    MANAGED_BY_LABEL,
    ORG_ID_LABEL,
    SPEC_HASH_LABEL,
    check_org_id,
    is_ours,
)

P = ParamSpec("P")
T = TypeVar("T")
STOP_TIMEOUT = 10
#: Seconds a listing is reused while the engine reports no change (:mod:`.watch`).
LIST_MAX_AGE = 30.0


def _changes_engine(
    method: Callable[Concatenate[DockerProvisioner, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[DockerProvisioner, P], Coroutine[Any, Any, T]]:
    """A method that changes containers or volumes: the next listing asks the engine again
    (marked before and after, so a listing that ran meanwhile is not reused either)."""

    @functools.wraps(method)
    async def changing(self: DockerProvisioner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._watch.changed()
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._watch.changed()

    return changing


class DockerProvisioner(Provisioner):
    """Org instances as Docker containers (see the module docstring).

    ``client`` injects a ``docker.DockerClient``; by default one is made from the environment
    (``DOCKER_HOST`` or the local socket) on first use.
    """

    name = "docker"

    def __init__(
        self, *, options: ProvisionerOptions, client: docker.DockerClient | None = None
    ) -> None:
        super().__init__(options=options)
        self._client = client
        self._owns_client = client is None
        self._locks: dict[str, asyncio.Lock] = {}
        self._watch = EngineWatch(max_age=LIST_MAX_AGE)

    async def _docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = await off_loop(docker.from_env)
        return self._client

    def _filters(self, org_id: str = "") -> dict[str, list[str]]:
        labels = [f"{MANAGED_BY_LABEL}={self.options.deployment_id}"]
        if org_id:
            labels.append(f"{ORG_ID_LABEL}={org_id}")
        return {"label": labels}

    async def _containers(self, org_id: str = "") -> builtins.list[Container]:
        client = await self._docker()
        # ignore_removed: a container removed between the engine's list and its inspect (another
        # replica deleting an org) is gone, not an error.
        found = await off_loop(
            client.containers.list, all=True, filters=self._filters(org_id), ignore_removed=True
        )
        # The engine filtered already; checking again costs nothing and guards the rule.
        ours = [
            c
            for c in found
            if is_ours(c.labels, deployment_id=self.options.deployment_id, org_id=org_id)
        ]
        return sorted(ours, key=lambda c: str(c.name))

    # -- the interface -------------------------------------------------------------------------

    @_changes_engine
    async def apply(self, *, spec: InstanceSpec) -> InstanceStatus:
        """See :meth:`Provisioner.apply`."""
        async with self._locks.setdefault(spec.org_id, asyncio.Lock()):
            kwargs = container_kwargs(spec, options=self.options)
            await self._ensure_volume(spec)
            container = None
            for existing in await self._containers(spec.org_id):
                if container is None and self._matches(existing, kwargs):
                    container = existing
                else:  # an older spec, or a name from before a rename
                    await self._remove_container(existing)
            if container is None:
                container = await self._create(kwargs)
            if container.status != "running":
                await off_loop(container.start)
            # Always re-read: the listed state may predate a stop by hand during this call.
            await off_loop(container.reload)
            if container.status != "running":
                await off_loop(container.start)
                await off_loop(container.reload)
            return await status_of(container, options=self.options)

    async def status(self, *, org_id: str) -> InstanceStatus | None:
        """See :meth:`Provisioner.status`."""
        containers = await self._containers(check_org_id(org_id))
        if containers:
            return await status_of(containers[0], options=self.options)
        volumes = await self._volumes(org_id)
        return self._data_only(org_id, [v.name for v in volumes]) if volumes else None

    @_changes_engine
    async def remove(self, *, org_id: str, keep_data: bool) -> None:
        """See :meth:`Provisioner.remove`."""
        async with self._locks.setdefault(org_id, asyncio.Lock()):
            for container in await self._containers(check_org_id(org_id)):
                await self._remove_container(container)
            if keep_data:
                return
            for volume in await self._volumes(org_id):
                try:
                    await off_loop(volume.remove, force=True)
                except NotFound:
                    pass
                except APIError as exc:  # 409: still in use by a container being removed
                    raise RetryableProvisionerError(
                        f"volume {volume.name} is still in use: {explain(exc)}"
                    ) from exc

    async def list(self) -> builtins.list[InstanceStatus]:
        """See :meth:`Provisioner.list`: containers of ours, then volumes without one. The last
        listing is answered again while the engine reports no change and every instance in it
        had settled (:mod:`.watch`)."""
        await asyncio.to_thread(self._watch.ensure_started, await self._docker())
        reused = self._watch.reuse()
        if reused is not None:
            return reused
        try:
            statuses = await self._list_now()
        except BaseException:
            self._watch.changed()
            raise
        return self._watch.keep(statuses)

    async def _list_now(self) -> builtins.list[InstanceStatus]:
        first: dict[str, Container] = {}
        for container in await self._listed():
            first.setdefault(container.labels[ORG_ID_LABEL], container)
        # Concurrently: a starting container is probed over HTTP, and a burst has many.
        found = await asyncio.gather(*(status_of(c, options=self.options) for c in first.values()))
        statuses: dict[str, InstanceStatus] = dict(zip(first, found, strict=True))
        leftovers: dict[str, builtins.list[str]] = {}
        for volume in await self._volumes():
            org_id = volume.attrs.get("Labels", {})[ORG_ID_LABEL]
            if org_id not in statuses:
                leftovers.setdefault(org_id, []).append(volume.name)
        for org_id, names in leftovers.items():
            statuses[org_id] = self._data_only(org_id, names)
        return [statuses[org_id] for org_id in sorted(statuses)]

    @_changes_engine
    async def stop(self, *, org_id: str) -> None:
        """Stop the container; its volume and the container itself stay."""
        for container in await self._containers(check_org_id(org_id)):
            await off_loop(container.stop, timeout=STOP_TIMEOUT)

    @_changes_engine
    async def restart(self, *, org_id: str) -> InstanceStatus:
        """Restart the container in place."""
        containers = await self._containers(check_org_id(org_id))
        if not containers:
            raise PermanentProvisionerError(f"org {org_id} has no container to restart")
        await off_loop(containers[0].restart, timeout=STOP_TIMEOUT)
        await off_loop(containers[0].reload)
        return await status_of(containers[0], options=self.options)

    async def logs(
        self,
        *,
        org_id: str,
        since: datetime | None = None,
        tail: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[str]:
        """See :meth:`Provisioner.logs`: the container's output (stdout and stderr) as the
        engine keeps it, through the SDK's log stream."""
        containers = await self._containers(check_org_id(org_id))
        if not containers:
            raise PermanentProvisionerError(f"org {org_id} has no container")
        stream = await off_loop(
            containers[0].logs,
            stream=True,
            follow=follow,
            stdout=True,
            stderr=True,
            tail="all" if tail is None else tail,
            since=since.timestamp() if since is not None else None,
        )
        try:
            async for line in lines_of(pumped(stream, stream.close)):
                yield line
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RetryableProvisionerError(f"Docker log stream broke: {exc}") from exc

    async def close(self) -> None:
        """Stop following the engine's events; close the SDK client if this provisioner made it."""
        await asyncio.to_thread(self._watch.close)
        if self._client is not None and self._owns_client:
            await asyncio.to_thread(self._client.close)
            self._client = None

    # -- steps ---------------------------------------------------------------------------------

    def _matches(self, container: Container, kwargs: dict[str, Any]) -> bool:
        wanted = kwargs["labels"][SPEC_HASH_LABEL]
        return bool(
            container.name == kwargs["name"] and container.labels.get(SPEC_HASH_LABEL) == wanted
        )

    async def _listed(self) -> builtins.list[Container]:
        """Every container of ours, sorted by name, from one list call: a running, settled
        container's list entry says all its status needs; the others are inspected. (The SDK's
        non-sparse list inspects every container: 10,000 requests for 10,000 orgs.)"""
        client = await self._docker()
        found = await off_loop(
            client.containers.list, all=True, filters=self._filters(), sparse=True
        )
        ours = [
            c
            for c in found
            if is_ours(c.attrs.get("Labels"), deployment_id=self.options.deployment_id, org_id="")
        ]

        async def complete(container: Container) -> Container | None:
            if settled(container.attrs):
                return client.containers.prepare_model(inspect_attrs(container.attrs))
            try:
                await off_loop(container.reload)
            except NotFound:  # removed since the list (another replica deleting an org)
                return None
            return container

        full = [c for c in await asyncio.gather(*(complete(c) for c in ours)) if c is not None]
        return sorted(full, key=lambda c: str(c.name))

    async def _volumes(self, org_id: str = "") -> builtins.list[Any]:
        client = await self._docker()
        found = await off_loop(client.volumes.list, filters=self._filters(org_id))
        return [
            v
            for v in found
            if is_ours(
                v.attrs.get("Labels"), deployment_id=self.options.deployment_id, org_id=org_id
            )
        ]

    async def _ensure_volume(self, spec: InstanceSpec) -> None:
        client = await self._docker()
        # Creating a volume that exists returns it unchanged (no conflict): one call either way.
        volume = await off_loop(
            client.volumes.create,
            name=spec.data_volume,
            labels=volume_labels(spec, options=self.options),
        )
        labels = volume.attrs.get("Labels")
        if not is_ours(labels, deployment_id=self.options.deployment_id, org_id=spec.org_id):
            raise PermanentProvisionerError(
                f"volume {spec.data_volume} exists but is not this deployment's volume of org "
                f"{spec.org_id}; it is left alone"
            )

    async def _create(self, kwargs: dict[str, Any]) -> Container:
        client = await self._docker()
        name = kwargs["name"]
        await check_image(client, kwargs["image"])
        for _ in range(2):
            try:
                return await off_loop(client.containers.create, **kwargs)
            except ImageNotFound:
                await pull(client, kwargs["image"])
            except NotFound as exc:  # a missing network, most often
                raise PermanentProvisionerError(f"cannot create {name}: {explain(exc)}") from exc
            except APIError as exc:  # 409: the name exists (another replica, or a crash)
                existing = await off_loop(client.containers.get, name)
                if not is_ours(
                    existing.labels,
                    deployment_id=self.options.deployment_id,
                    org_id=kwargs["labels"][ORG_ID_LABEL],
                ):
                    raise PermanentProvisionerError(
                        f"container name {name} is taken by a container this deployment does "
                        "not manage; it is left alone"
                    ) from exc
                if self._matches(existing, kwargs):
                    return existing  # adopt
                await self._remove_container(existing)
        raise RetryableProvisionerError(f"could not create container {name}; will retry")

    async def _remove_container(self, container: Container) -> None:
        try:
            await off_loop(container.remove, force=True)
        except NotFound:
            pass
        except APIError as exc:  # 409: removal already in progress
            raise RetryableProvisionerError(
                f"container {container.name} is being removed: {explain(exc)}"
            ) from exc

    def _data_only(self, org_id: str, volumes: builtins.list[str]) -> InstanceStatus:
        return InstanceStatus(
            org_id=org_id,
            state="absent",
            handle={"volumes": sorted(volumes)},
            message="data kept, no container",
            labels={ORG_ID_LABEL: org_id, MANAGED_BY_LABEL: self.options.deployment_id},
        )
