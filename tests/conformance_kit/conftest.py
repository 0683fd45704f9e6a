"""Fixtures of the conformance kit's tests: the Docker engine, the images under test, and the
broken example image built once per session (Docker's layer cache makes a rebuild instant)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conformance_kit.helpers import free_port_in_range
from tests.support.services import docker_available, need
from tests.support.wait import wait_until

INSTANCE_IMAGE = "orgplane-instance:dev"
BROKEN_IMAGE = "opkit-broken:test"
BROKEN_DIR = Path(__file__).parent / "broken"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the real Docker engine (fails under CI, skips elsewhere, when absent)."""
    need("Docker", docker_available())
    import docker

    client = docker.from_env(timeout=120)
    try:
        yield client
    finally:
        client.close()


def image_present(client: Any, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


@pytest.fixture(scope="session")
def instance_image(docker_client: Any) -> str:
    """orgplane's own instance image (scripts/build-images.sh)."""
    need(
        f"the image {INSTANCE_IMAGE} (scripts/build-images.sh)",
        image_present(docker_client, INSTANCE_IMAGE),
    )
    return INSTANCE_IMAGE


@pytest.fixture(scope="session")
def broken_image(docker_client: Any) -> str:
    """The deliberately broken example, FROM orgplane-base:bookworm."""
    need("the image orgplane-base:bookworm", image_present(docker_client, "orgplane-base:bookworm"))
    docker_client.images.build(path=str(BROKEN_DIR), tag=BROKEN_IMAGE, rm=True)
    return BROKEN_IMAGE


REDIS_IMAGE = "orgplane-redis:dev"


@dataclass(frozen=True)
class ContainerRedis:
    """A Redis server in a container: the admin URL (published on 127.0.0.1), and the network
    and address an instance reaches it at."""

    admin_url: str
    network: str
    instance_host: str


@pytest.fixture(scope="module")
def container_redis(docker_client: Any) -> Iterator[ContainerRedis]:
    """Redis (``orgplane-redis:dev``) with a password on its default user, on a network of its
    own, both named ``opkit-redis-...`` and removed after the module."""
    need(
        f"the image {REDIS_IMAGE} (scripts/build-images.sh)",
        image_present(docker_client, REDIS_IMAGE),
    )
    name = f"opkit-redis-{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    labels = {"orgplane.conformance": "1"}
    network = docker_client.networks.create(name, driver="bridge", labels=labels)
    container = None
    try:
        container, port = _start_redis(docker_client, name, password, labels)
        admin_url = f"redis://:{password}@127.0.0.1:{port}/0"
        wait_until(lambda: _pings(admin_url), what="the Redis container answering", timeout=60)
        yield ContainerRedis(admin_url=admin_url, network=name, instance_host=f"{name}:6379")
    finally:
        if container is not None:
            container.remove(force=True)
        network.remove()


def _start_redis(client: Any, name: str, password: str, labels: dict[str, str]) -> Any:
    """The Redis container, published on a port of the kit's range; a port the engine has
    given another container meanwhile (it holds no socket a bind test would see) is tried
    again with another."""
    import docker

    for _ in range(10):
        port = free_port_in_range()
        try:
            container = client.containers.run(
                REDIS_IMAGE,
                ["redis-server", "--bind", "0.0.0.0", "--requirepass", password, "--save", ""],
                name=name,
                labels=labels,
                network=name,
                ports={"6379/tcp": ("127.0.0.1", port)},
                detach=True,
            )
        except docker.errors.APIError as exc:
            if "already allocated" not in str(exc):
                raise
            client.containers.get(name).remove(force=True)
            continue
        return container, port
    raise RuntimeError("no port of the kit's range could be published")


def _pings(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
