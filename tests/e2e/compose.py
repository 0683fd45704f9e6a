"""``compose/compose.yaml`` run as a user runs it: ``docker-compose -p <run> --env-file .env up``.

The env file is ``compose/.env.example`` with the REQUIRED values filled in and what keeps runs
apart changed: a project name, base domain, org network and deployment id of the run's own,
Traefik's ports on free 127.0.0.1 ports, and the locally built stand-ins for the two images no
registry serves here (``orgplane-traefik:dev``, ``orgplane-redis:dev``). :meth:`down` removes the
org containers and volumes the control plane made (label ``orgplane.managed-by=<run>``), then the
project with its volumes (``docker-compose down -v``): nothing of another run or project.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound

from provisioners.naming import MANAGED_BY_LABEL
from provisioners.processes import free_port
from tests.deploy.compose_file import COMPOSE_FILE, read_env_file
from tests.e2e.images import CONTROL_PLANE_IMAGE
from tests.support.services import need
from tests.support.traefik import Traefik

TRAEFIK_IMAGE = "orgplane-traefik:dev"
REDIS_IMAGE = "orgplane-redis:dev"


@dataclass
class ComposeProject:
    """One ``docker-compose -p`` project of the shipped compose file."""

    client: Any  # a docker.DockerClient
    run_id: str
    directory: Path
    admin_password: str = field(default_factory=lambda: secrets.token_hex(16))
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)

    @property
    def base_domain(self) -> str:
        """The control plane's host; org ``x`` is at ``x.<base_domain>``. Unique per run, so a
        Traefik of another run (its Docker provider sees every container) never matches ours."""
        return f"{self.run_id}.localhost"

    @property
    def admin_email(self) -> str:
        return read_env_file()["ORGPLANE_ADMIN_EMAIL"]

    @property
    def env_file(self) -> Path:
        return self.directory / ".env"

    def traefik(self) -> Traefik:
        """Compose's Traefik, for :func:`tests.support.traefik.through` (no API port: compose
        does not expose Traefik's API)."""
        return Traefik(
            web=self.http_port,
            websecure=self.https_port,
            api=0,
            log=self.directory / "no-traefik-log",
            ca=None,
        )

    def write_env(self) -> None:
        """compose/.env as a user fills it in, with this run's names, ports and subnet."""
        env = read_env_file()
        octet = free_subnet_octet()
        env.update(
            # Not compose's default 172.30.0.0/16: Docker hands out 172.17-31.0.0/16 to the
            # networks other tests make at the same time, and one of them took 172.30 once.
            ORGPLANE_NETWORK_SUBNET=f"10.213.{octet}.0/24",
            ORGPLANE_NETWORK_IP_RANGE=f"10.213.{octet}.128/25",
            TRAEFIK_ADDRESS=f"10.213.{octet}.2",
        )
        env.update(
            ORGPLANE_SECRET_KEY=secrets.token_hex(32),
            REDIS_PASSWORD=secrets.token_hex(16),
            ORGPLANE_ROUTING_TOKEN=secrets.token_hex(32),
            DOCKER_GID=str(os.stat("/var/run/docker.sock").st_gid),
            ORGPLANE_ADMIN_PASSWORD=self.admin_password,
            ORGPLANE_BASE_DOMAIN=self.base_domain,
            ORGPLANE_PUBLIC_URL=f"http://{self.base_domain}",
            ORGPLANE_DOCKER_NETWORK=f"orgplane-{self.run_id}",
            ORGPLANE_DEPLOYMENT_ID=self.run_id,
            HTTP_PORT=f"127.0.0.1:{self.http_port}",
            HTTPS_PORT=f"127.0.0.1:{self.https_port}",
            CONTROL_PLANE_PORT=str(free_port()),
            TRAEFIK_IMAGE=TRAEFIK_IMAGE,
            REDIS_IMAGE=REDIS_IMAGE,
            CONTROL_PLANE_IMAGE=CONTROL_PLANE_IMAGE,
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))

    def compose(self, *args: str, timeout: float = 300) -> str:
        """Run ``docker-compose -p <run> -f compose/compose.yaml --env-file <.env> ARGS``."""
        binary = shutil.which("docker-compose")
        need("docker-compose", binary is not None)
        assert binary is not None
        command = [binary, "-p", self.run_id, "-f", str(COMPOSE_FILE)]
        command += ["--env-file", str(self.env_file), *args]
        clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=clean, check=False
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{output[-4000:]}")
        return output

    def service_states(self) -> dict[str, str]:
        """Each of the project's services: ``running``, or ``exited <code>`` once done."""
        project = {"label": [f"com.docker.compose.project={self.run_id}"]}
        states = {}
        for container in self.client.containers.list(all=True, filters=project):
            state = container.attrs["State"]
            status = str(state["Status"])
            if status == "exited":
                status = f"exited {state['ExitCode']}"
            states[container.labels["com.docker.compose.service"]] = status
        return states

    def logs(self, service: str, tail: int = 40) -> str:
        try:
            return self.compose("logs", "--no-color", f"--tail={tail}", service, timeout=60)
        except AssertionError as exc:
            return str(exc)

    def down(self) -> None:
        """The control plane first (so it recreates nothing), then the org containers and
        volumes it made, then the project and its volumes and network."""
        try:
            self.compose("stop", "control-plane", timeout=120)
        finally:
            managed = {"label": [f"{MANAGED_BY_LABEL}={self.run_id}"]}
            for container in self.client.containers.list(
                all=True, filters=managed, ignore_removed=True
            ):
                _ignore_missing(container.remove, force=True)
            for volume in self.client.volumes.list(filters=managed):
                _ignore_missing(volume.remove, force=True)
            self.compose("down", "-v", "--remove-orphans", timeout=180)


def _ignore_missing(remove: Any, **kwargs: Any) -> None:
    try:
        remove(**kwargs)
    except NotFound:
        pass
    except APIError as exc:  # 409: removal already in progress
        if exc.status_code != 409:
            raise


def free_subnet_octet() -> int:
    """A third octet N such that no Docker network uses 10.213.N.0/24 now (outside the pools
    Docker allocates from by default, 172.17-31.0.0/16 and 192.168.0.0/16)."""
    import docker

    client = docker.from_env()
    try:
        taken = {
            config.get("Subnet", "")
            for network in client.networks.list()
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []
        }
    finally:
        client.close()
    free = [n for n in range(1, 255) if f"10.213.{n}.0/24" not in taken]
    assert free, "every 10.213.N.0/24 is taken by a Docker network"
    return secrets.choice(free)
