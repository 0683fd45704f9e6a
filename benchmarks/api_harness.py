"""The control plane the API benchmarks drive (:mod:`benchmarks.bench_provision_api` and the
benchmarks built on it): uvicorn in this process, SQLite in a temporary directory, embedded mode,
the reconciler on, a platform admin logged in over HTTP; on the local backend, or on the docker
backend with a network of the run's own, swept at the end with everything labelled with the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from benchmarks import Result
from control_plane.app import create_app
from control_plane.reconciler.spec import provisioner_options
from control_plane.settings import Settings
from provisioners.naming import MANAGED_BY_LABEL
from provisioners.registry import create_provisioner

HEARTBEAT_INTERVAL = os.environ.get("BENCH_PROVISION_API_HEARTBEAT", "10")
RECONCILE_INTERVAL = os.environ.get("BENCH_PROVISION_API_RECONCILE", "2")
#: ``ORGPLANE_DOCKER_HEALTH_INTERVAL`` of the run; empty: the product's default (no check).
HEALTH_INTERVAL = os.environ.get("BENCH_PROVISION_API_HEALTH_INTERVAL", "")
#: The instance image; the same variable as the Docker tests' (``tests/provisioners/harness.py``).
IMAGE = os.environ.get("ORGPLANE_TEST_INSTANCE_IMAGE", "orgplane-instance:dev")
TEST_RUN_LABEL = "orgplane.test-run"
ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = secrets.token_hex(16)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``ORGPLANE_*`` is exactly ``values`` inside the block (Settings read it), as before after."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ORGPLANE_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)
        os.environ.update(saved)


def _settings(run_id: str, data: Path, port: int, **extra: str) -> Settings:
    env = {
        "ORGPLANE_MODE": "embedded",
        "ORGPLANE_HOST": "127.0.0.1",
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_DATA_DIR": str(data),
        "ORGPLANE_SECRET_KEY": secrets.token_hex(32),
        "ORGPLANE_LOG_LEVEL": "WARNING",
        "ORGPLANE_ADMIN_EMAIL": ADMIN_EMAIL,
        "ORGPLANE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ORGPLANE_DEPLOYMENT_ID": run_id,
        "ORGPLANE_RECONCILER_ENABLED": "true",
        "ORGPLANE_RECONCILE_INTERVAL": RECONCILE_INTERVAL,
        "ORGPLANE_HEARTBEAT_INTERVAL": HEARTBEAT_INTERVAL,
        "ORGPLANE_MAX_CONCURRENT_PROVISIONING": "8",
        **{f"ORGPLANE_{k}": v for k, v in extra.items()},
    }
    with _environment(env):
        return Settings()


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextlib.asynccontextmanager
async def _control_plane(settings: Settings, sockets: list[socket.socket]) -> AsyncIterator[Any]:
    """The control plane served on ``sockets``; afterwards every instance its provisioner knows
    is removed by a fresh provisioner (the reconciler has stopped by then: nothing re-creates)."""
    app = create_app(settings)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=sockets))
    try:
        for _ in range(300):
            if server.started or task.done():
                break
            await asyncio.sleep(0.1)
        if not server.started:
            raise RuntimeError("the control plane did not start")
        yield app
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=30)
        provisioner = create_provisioner(
            settings.provisioning.provisioner, options=provisioner_options(app.state.runtime)
        )
        try:
            for status in await provisioner.list():
                await provisioner.remove(org_id=status.org_id, keep_data=False)
        finally:
            await provisioner.close()


class _Admin:
    """A platform admin's HTTP client of the control plane."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        answer = await self.http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        answer.raise_for_status()
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    async def create_org(self, slug: str) -> tuple[str, float]:
        """``POST /api/v1/orgs``; the org id and when the answer arrived."""
        answer = await self.http.post(
            "/api/v1/orgs", headers=self.headers, json={"name": slug, "slug": slug}
        )
        answered = time.perf_counter()
        if answer.status_code != 202:
            raise RuntimeError(f"creating {slug}: {answer.status_code} {answer.text}")
        return str(answer.json()["id"]), answered

    async def running_ids(self) -> set[str]:
        """Ids of the orgs in phase ``running`` (one list request)."""
        answer = await self.http.get(
            "/api/v1/orgs", headers=self.headers, params={"phase": "running", "limit": 200}
        )
        answer.raise_for_status()
        return {org["id"] for org in answer.json()["items"]}

    async def has_heartbeat(self, org_id: str) -> bool:
        answer = await self.http.get(f"/api/v1/orgs/{org_id}/instance", headers=self.headers)
        answer.raise_for_status()
        return bool(answer.json().get("last_heartbeat_at"))


@contextlib.asynccontextmanager
async def admin_session(settings: Settings, sockets: list[socket.socket]) -> AsyncIterator[_Admin]:
    """The control plane served on ``sockets`` and its platform admin, logged in over HTTP."""
    base = f"http://127.0.0.1:{settings.server.port}"
    async with (
        _control_plane(settings, sockets),
        httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as http,
    ):
        admin = _Admin(http)
        await admin.login()
        yield admin


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Drive = Callable[[Settings, list[socket.socket], str], Awaitable[list[Result]]]


async def bench_local(drive: Drive, **extra: str) -> list[Result]:
    """``drive`` against a local-backend control plane; ``extra`` settings
    (``WARM_POOL_SIZE="4"``) on top of the defaults."""
    run_id = f"bench-api-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="orgplane-bench-api-") as tmp:
        port = _free_port()
        settings = _settings(run_id, Path(tmp), port, PROVISIONER="local", **extra)
        sockets = [_listen("127.0.0.1", port)]
        try:
            return await drive(settings, sockets, "local")
        finally:
            for sock in sockets:
                sock.close()


def _docker_missing() -> str:
    try:
        import docker

        client = docker.from_env(timeout=10)
    except Exception as exc:
        return f"no Docker engine ({type(exc).__name__})"
    try:
        client.images.get(IMAGE)
        return ""
    except Exception:
        return f"no image {IMAGE}"
    finally:
        client.close()


def _run_containers(client: Any, run_id: str) -> list[Any]:
    """The running containers the run's control plane manages."""
    managed: dict[str, str | list[str] | bool] = {"label": [f"{MANAGED_BY_LABEL}={run_id}"]}
    return list(client.containers.list(filters=managed))


def _sweep(run_id: str) -> None:
    """Remove whatever still carries this run's labels: containers, volumes, then the network."""
    import docker
    from docker.errors import NotFound

    client = docker.from_env(timeout=120)
    try:
        for label in (MANAGED_BY_LABEL, TEST_RUN_LABEL):
            selector: dict[str, str | list[str] | bool] = {"label": [f"{label}={run_id}"]}
            for container in client.containers.list(all=True, filters=selector):
                with contextlib.suppress(NotFound):
                    container.remove(force=True)
            for volume in client.volumes.list(filters=selector):
                with contextlib.suppress(NotFound):
                    volume.remove(force=True)
        for network in client.networks.list(filters={"label": [f"{TEST_RUN_LABEL}={run_id}"]}):
            with contextlib.suppress(NotFound):
                network.remove()
    finally:
        client.close()


def _network_gateway(run_id: str) -> tuple[str, str]:
    """Create the run's network; its name and the host's address on it."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        name = f"orgplane-{run_id}"
        network = client.networks.create(name, driver="bridge", labels={TEST_RUN_LABEL: run_id})
        network.reload()
        return name, str(network.attrs["IPAM"]["Config"][0]["Gateway"])
    finally:
        client.close()


async def bench_docker(
    drive: Drive,
    *,
    services: Callable[[str, str], dict[str, str]] | None = None,
    **extra: str,
) -> list[Result]:
    """As :func:`bench_local`, on the docker backend. ``services(run_id, network)``, run once
    the run's network exists, may start more containers there (labelled with the run, so the
    sweep removes them) and answers more settings."""
    missing = await asyncio.to_thread(_docker_missing)
    if missing:
        return [Result.skip("docker", missing)]
    run_id = f"bench-api-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="orgplane-bench-api-") as tmp:
        sockets: list[socket.socket] = []
        try:
            network, gateway = await asyncio.to_thread(_network_gateway, run_id)
            port = _free_port()
            sockets = [_listen("127.0.0.1", port), _listen(gateway, port)]
            if services is not None:
                extra = {**extra, **await asyncio.to_thread(services, run_id, network)}
            settings = _settings(
                run_id,
                Path(tmp),
                port,
                PROVISIONER="docker",
                INSTANCE_IMAGE=IMAGE,
                DOCKER_NETWORK=network,
                DOCKER_PUBLISH_PORTS="true",
                INSTANCE_CONTROL_PLANE_URL=f"http://{gateway}:{port}",
                **({"DOCKER_HEALTH_INTERVAL": HEALTH_INTERVAL} if HEALTH_INTERVAL else {}),
                **extra,
            )
            return await drive(settings, sockets, "docker")
        finally:
            for sock in sockets:
                sock.close()
            await asyncio.to_thread(_sweep, run_id)
