"""Running the image under test as the Docker provisioner would.

The container is made from :func:`provisioners.docker.container_spec.container_kwargs` (the
hardening, the data volume at ``/data``, the ``contract.Env`` environment), on a bridge network
of the run's own whose gateway is where the kit's control plane listens, with its port published
on 127.0.0.1. Only the names differ: everything the kit makes is called ``opkit-<run>...`` and
labelled ``orgplane.conformance=1`` and ``orgplane.managed-by=opkit-<run>``, and
:meth:`KitContainer.close` removes exactly those objects.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from collections.abc import Mapping
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from orgplane_wire.contract import Env
from provisioners.base import InstanceSpec, ProvisionerOptions
from provisioners.docker.container_spec import DATA_PATH, container_kwargs, reserved_image_labels
from provisioners.docker.container_status import endpoint_of

CONFORMANCE_LABEL = "orgplane.conformance"
PREFIX = "opkit-"
#: Seconds to wait for a crash-looping container's next exit.
STOP_WAIT = 15


class KitContainer:
    """One run's network, volume and container (see the module docstring)."""

    def __init__(self, *, run_id: str, image: str, client: docker.DockerClient | None = None):
        self.run_id = run_id
        self.name = f"{PREFIX}{run_id}"
        self.image = image
        self.client = client or docker.from_env(timeout=120)
        self.options = ProvisionerOptions(
            deployment_id=self.name, docker_network=self.name, docker_publish_ports=True
        )
        self.labels = {CONFORMANCE_LABEL: "1"}
        self.network: Any = self.client.networks.create(
            self.name, driver="bridge", labels={**self.labels, "orgplane.managed-by": self.name}
        )
        self.network.reload()
        self.container: Any = None

    @property
    def gateway(self) -> str:
        """The address of this machine on the run's network (where the container reaches it)."""
        return str(self.network.attrs["IPAM"]["Config"][0]["Gateway"])

    def reserved_labels(self) -> list[str]:
        """Labels of the image the provisioner refuses to run (``traefik.*``, ``orgplane.*``);
        the image is pulled first when the engine does not have it, as the provisioner does."""
        try:
            found = self.client.images.get(self.image)
        except ImageNotFound:
            found = self.client.images.pull(self.image)
        return reserved_image_labels(found.labels)

    def start(
        self, *, org_id: str, slug: str, env: Mapping[str, str], extra_network: str = ""
    ) -> None:
        """Create the volume and the container and start it (also on ``extra_network``, where
        the Redis it is given may be)."""
        spec = InstanceSpec(
            org_id=org_id,
            slug=slug,
            instance_id=f"{self.name}-1",
            image=self.image,
            env=dict(env),
            data_volume=f"{self.name}-data",
            labels=self.labels,
        )
        kwargs = container_kwargs(spec, options=self.options)
        kwargs["name"] = kwargs["hostname"] = self.name
        kwargs["environment"][Env.INTERNAL_HOSTS] = self.name
        self.client.volumes.create(spec.data_volume, labels=kwargs["labels"])
        self.container = self.client.containers.create(**kwargs)
        if extra_network:
            self.client.networks.get(extra_network).connect(self.container)
        self.container.start()

    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` where the container's port is published now ('' if none)."""
        self.container.reload()
        return endpoint_of(self.container.attrs, options=self.options)

    def status(self) -> str:
        """The engine's state of the container (``running``, ``exited``...)."""
        self.container.reload()
        return str(self.container.status)

    def not_running(self) -> str:
        """Why the container does not keep running ('' when it does): it is not running, or the
        engine has restarted it (a crash loop, caught between two crashes). A crashing one is
        left stopped, so its exit status can be read."""
        self.container.reload()
        restarts = int(self.container.attrs.get("RestartCount") or 0)
        if self.container.status == "running" and restarts == 0:
            return ""
        code: Any = (self.container.attrs.get("State") or {}).get("ExitCode")
        if self.container.status == "running":  # between two crashes: wait for the next
            try:
                self.container.update(restart_policy={"Name": "no"})
                code = self.container.wait(timeout=STOP_WAIT).get("StatusCode")
            except APIError:  # it crashed meanwhile and is restarting: that exit is the one
                self.container.reload()
                code = (self.container.attrs.get("State") or {}).get("ExitCode")
            except Exception:  # it runs on: restarted, and not crashed again
                code = "none yet"
        with contextlib.suppress(APIError):
            self.container.stop(timeout=1)  # no more restarts
        return f"the container stopped, restarted {restarts} times (last exit status {code})"

    def logs(self, tail: int = 20) -> str:
        """The last lines the container wrote."""
        return bytes(self.container.logs(tail=tail)).decode(errors="replace")

    def data_files(self) -> dict[str, int]:
        """Path -> size of every regular file in the data volume (read through the engine)."""
        stream, _ = self.container.get_archive(DATA_PATH)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return {m.name: m.size for m in tar.getmembers() if m.isfile()}

    def write_data_file(self, name: str, content: bytes) -> None:
        """Put a file into the data volume, owned by the instance's uid."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode = len(content), 10001, 10001, 0o600
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
        if not self.container.put_archive(DATA_PATH, buffer.getvalue()):
            raise RuntimeError("the engine refused to write into the data volume")

    def read_data_file(self, name: str) -> bytes | None:
        """A file of the data volume, or None when it is not there."""
        try:
            stream, _ = self.container.get_archive(f"{DATA_PATH}/{name}")
        except NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            return member.read() if member else None

    def restart(self, timeout: int = 10) -> None:
        """``docker restart``: stop (SIGTERM, then SIGKILL after ``timeout``) and start again."""
        self.container.restart(timeout=timeout)

    def terminate(self, deadline: float) -> tuple[float, int | None]:
        """Send SIGTERM and wait up to ``deadline`` seconds for the exit.

        Returns the seconds it took and the exit status (None: still running at the deadline,
        then killed). The restart policy is turned off first so the engine does not start the
        container again."""
        self.container.update(restart_policy={"Name": "no"})
        started = time.monotonic()
        self.container.kill(signal="SIGTERM")
        try:
            result = self.container.wait(timeout=deadline)
        except Exception:  # the wait timed out: still running
            self.container.kill()
            return time.monotonic() - started, None
        return time.monotonic() - started, int(result.get("StatusCode", -1))

    def close(self) -> None:
        """Remove the container, its volume and the network (only this run's objects)."""
        filters: dict[str, Any] = {
            "label": [f"orgplane.managed-by={self.name}", f"{CONFORMANCE_LABEL}=1"]
        }
        for container in self.client.containers.list(all=True, filters=filters):
            container.remove(force=True)
        for volume in self.client.volumes.list(filters=filters):
            volume.remove(force=True)
        self.network.remove()
