"""Fixtures of the conformance kit's tests: the Docker engine, the images under test, and the
broken example image built once per session (Docker's layer cache makes a rebuild instant)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import docker_available, need

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
