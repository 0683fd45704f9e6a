"""The whole platform on the real Docker engine, as ``compose/compose.yaml`` runs it.

One test run owns a user-defined network, a Redis with ACLs on, a SQLite volume and a control
plane container with the ``docker`` provisioner; the org containers and volumes the control plane
creates carry ``orgplane.managed-by=<run id>`` (the run id is the deployment id). Everything the
run creates itself carries ``orgplane.test-run=<run id>``. :meth:`DockerPlatform.teardown`
removes exactly the objects with one of those two labels, never anything else.

Redis is started by ``compose/redis-entrypoint.sh`` as in compose, from the host's binary
(see :mod:`tests.e2e.images`).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from docker.errors import APIError, NotFound

from provisioners.naming import MANAGED_BY_LABEL, ORG_ID_LABEL
from tests.e2e.images import BASE_IMAGE, CONTROL_PLANE_IMAGE, INSTANCE_IMAGE, redis_server_mounts
from tests.support.wait import WaitTimeout, wait_until

TEST_RUN_LABEL = "orgplane.test-run"
BASE_DOMAIN = "orgplane.localhost"
#: The issuer the control plane signs as and the instances check (as in compose).
PUBLIC_URL = f"http://{BASE_DOMAIN}"
ADMIN_EMAIL = "admin@orgplane.localhost"
REDIS_ADMIN_USER = "orgplane"
READY_TIMEOUT = 60.0


def host_port(container: Any, port: str) -> int:
    """The 127.0.0.1 port the engine published ``port`` (``"8080/tcp"``) of ``container`` on."""
    container.reload()
    return int(container.ports[port][0]["HostPort"])


@dataclass
class DockerPlatform:
    """Redis and the control plane of one run, and the sweep of everything labelled with it."""

    client: Any  # a docker.DockerClient; its stubs cannot say ("127.0.0.1", None) ports
    run_id: str
    admin_password: str = field(default_factory=lambda: secrets.token_hex(16))
    redis_password: str = field(default_factory=lambda: secrets.token_hex(16))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    control_plane: Any = field(init=False, default=None)
    redis: Any = field(init=False, default=None)

    @property
    def network(self) -> str:
        """The network Redis, the control plane and the org containers share."""
        return f"orgplane-{self.run_id}"

    @property
    def control_plane_name(self) -> str:
        """The control plane's container name, also its DNS name on the network."""
        return f"orgplane-{self.run_id}-cp"

    @property
    def labels(self) -> dict[str, str]:
        """Labels of every object this run creates itself."""
        return {TEST_RUN_LABEL: self.run_id}

    def start(self) -> None:
        """Network, Redis, the one-shot migration, then the control plane (ready)."""
        self.client.networks.create(self.network, driver="bridge", labels=self.labels)
        self._start_redis()
        self._migrate()
        self.control_plane = self.client.containers.run(
            CONTROL_PLANE_IMAGE,
            ["serve"],
            detach=True,
            name=self.control_plane_name,
            environment=self.control_plane_env(),
            # The docker provisioner talks to the host's engine; org containers join the run's
            # network, where the control plane reaches them by name (as under compose).
            volumes={
                self._data_volume: {"bind": "/data", "mode": "rw"},
                "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            },
            group_add=[str(os.stat("/var/run/docker.sock").st_gid)],
            ports={"8080/tcp": ("127.0.0.1", None)},
            **self._hardened(),
        )
        self.wait_control_plane_ready()

    def control_plane_env(self) -> dict[str, str]:
        """The control plane's settings: production mode, docker provisioner, fast loops."""
        return {
            "ORGPLANE_MODE": "production",
            "ORGPLANE_SECRET_KEY": self.secret_key,
            "ORGPLANE_PUBLIC_URL": PUBLIC_URL,
            "ORGPLANE_BASE_DOMAIN": BASE_DOMAIN,
            "ORGPLANE_ADMIN_EMAIL": ADMIN_EMAIL,
            "ORGPLANE_ADMIN_PASSWORD": self.admin_password,
            "ORGPLANE_REDIS_URL": (
                f"redis://{REDIS_ADMIN_USER}:{self.redis_password}@{self._redis_name}:6379/0"
            ),
            "ORGPLANE_PROVISIONER": "docker",
            "ORGPLANE_DOCKER_NETWORK": self.network,
            "ORGPLANE_DEPLOYMENT_ID": self.run_id,
            "ORGPLANE_INSTANCE_IMAGE": INSTANCE_IMAGE,
            "ORGPLANE_INSTANCE_CONTROL_PLANE_URL": f"http://{self.control_plane_name}:8080",
            "ORGPLANE_HEARTBEAT_INTERVAL": "2",
            "ORGPLANE_RECONCILE_INTERVAL": "0.5",
            "ORGPLANE_DELETION_GRACE_SECONDS": "1",
            # One warm spare: the first org claims it, so everything below also proves that a
            # claimed spare container is the org's instance (isolation, restart, drift, delete).
            "ORGPLANE_WARM_POOL_SIZE": "1",
            "ORGPLANE_LOG_LEVEL": "INFO",
        }

    def reachable(self, endpoint: str) -> str:
        """The URL the test reaches an instance at: the control plane records
        ``http://<container name>:<port>`` (its view, on the run's network, as under compose);
        the host reaches the same container at its address on that network."""
        parts = urlsplit(endpoint)
        if not parts.hostname:
            return endpoint
        container: Any = None

        def address() -> str:
            nonlocal container
            container = self.client.containers.get(parts.hostname)
            networks = container.attrs["NetworkSettings"]["Networks"] or {}
            return str((networks.get(self.network) or {}).get("IPAddress", ""))

        # A container the engine is (re)starting has no address yet.
        try:
            found = wait_until(
                address, what=f"{parts.hostname}'s address", timeout=READY_TIMEOUT, interval=0.1
            )
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; its state: {container.attrs['State']}") from None
        return f"{parts.scheme}://{found}:{parts.port}"

    @property
    def control_plane_url(self) -> str:
        """Where the test reaches the control plane (re-read: a restart may move the port)."""
        return f"http://127.0.0.1:{host_port(self.control_plane, '8080/tcp')}"

    def wait_control_plane_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until ``/readyz`` answers 200; fails with the container's log otherwise."""

        def ready() -> bool:
            self.control_plane.reload()
            if self.control_plane.status == "exited":
                raise AssertionError(f"the control plane exited:\n{self.logs()}")
            try:
                return httpx.get(f"{self.control_plane_url}/readyz", timeout=2).status_code == 200
            except (httpx.HTTPError, KeyError, IndexError, TypeError):
                return False  # not listening yet, or the port not published yet

        try:
            wait_until(ready, what="the control plane ready", timeout=timeout, interval=0.2)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}:\n{self.logs()}") from None

    def logs(self, tail: int = 60) -> str:
        """The control plane's last log lines, for failure messages."""
        return bytes(self.control_plane.logs(tail=tail)).decode(errors="replace")

    def redis_admin(self) -> Any:
        """A client of this run's Redis as the control plane's admin user."""
        import redis

        port = host_port(self.redis, "6379/tcp")
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            username=REDIS_ADMIN_USER,
            password=self.redis_password,
            socket_timeout=5,
        )

    def managed_objects(self, org_ids: set[str] | None = None) -> dict[str, list[str]]:
        """Names of the containers and volumes labelled as managed by this run's deployment
        (only those of ``org_ids``, when given)."""
        managed = {"label": [f"{MANAGED_BY_LABEL}={self.run_id}"]}
        containers = self.client.containers.list(all=True, filters=managed, ignore_removed=True)
        volumes = self.client.volumes.list(filters=managed)

        def wanted(labels: dict[str, str] | None) -> bool:
            return org_ids is None or (labels or {}).get(ORG_ID_LABEL) in org_ids

        return {
            "containers": [str(c.name) for c in containers if wanted(c.labels)],
            "volumes": [str(v.name) for v in volumes if wanted(v.attrs.get("Labels"))],
        }

    def teardown(self) -> None:
        """Remove exactly this run's containers, volumes and network (ours first, so the
        control plane cannot recreate org containers while they go)."""
        for label in (TEST_RUN_LABEL, MANAGED_BY_LABEL):
            for container in self.client.containers.list(
                all=True, filters={"label": [f"{label}={self.run_id}"]}, ignore_removed=True
            ):
                _ignore_missing(container.remove, force=True)
        for label in (TEST_RUN_LABEL, MANAGED_BY_LABEL):
            for volume in self.client.volumes.list(filters={"label": [f"{label}={self.run_id}"]}):
                _ignore_missing(volume.remove, force=True)
        for network in self.client.networks.list(
            filters={"label": [f"{TEST_RUN_LABEL}={self.run_id}"]}
        ):
            _ignore_missing(network.remove)

    # -- steps -------------------------------------------------------------------------------

    @property
    def _redis_name(self) -> str:
        return f"orgplane-{self.run_id}-redis"

    @property
    def _data_volume(self) -> str:
        return f"orgplane-{self.run_id}-data"

    def _hardened(self) -> dict[str, Any]:
        # As compose runs the control plane: read-only root, no capabilities, labelled.
        return {
            "labels": self.labels,
            "network": self.network,
            "read_only": True,
            "tmpfs": {"/tmp": ""},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
        }

    def _start_redis(self) -> None:
        mounts, lib_dir = redis_server_mounts()
        self.redis = self.client.containers.run(
            BASE_IMAGE,
            [
                "sh",
                "/usr/local/bin/redis-entrypoint.sh",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
                "--dir",
                "/data",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            detach=True,
            name=self._redis_name,
            user="65534:65534",
            environment={
                "LD_LIBRARY_PATH": lib_dir,
                "REDIS_ADMIN_PASSWORD": self.redis_password,
                "REDIS_ACL_FILE": "/data/users.acl",
            },
            volumes=mounts,
            # Published on loopback only so the test can read the ACL users.
            ports={"6379/tcp": ("127.0.0.1", None)},
            **{**self._hardened(), "tmpfs": {"/tmp": "", "/data": "mode=1777"}},
        )

    def _migrate(self) -> None:
        self.client.volumes.create(self._data_volume, labels=self.labels)
        migrate = self.client.containers.run(
            CONTROL_PLANE_IMAGE,
            ["migrate"],
            detach=True,
            name=f"orgplane-{self.run_id}-migrate",
            environment=self.control_plane_env(),
            volumes={self._data_volume: {"bind": "/data", "mode": "rw"}},
            **self._hardened(),
        )
        result = migrate.wait(timeout=120)
        output = bytes(migrate.logs()).decode(errors="replace")
        migrate.remove(force=True)
        assert result["StatusCode"] == 0, f"orgplane migrate failed:\n{output}"


def _ignore_missing(remove: Any, **kwargs: Any) -> None:
    try:
        remove(**kwargs)
    except NotFound:
        pass
    except APIError as exc:  # 409: removal already in progress
        if exc.status_code != 409:
            raise
