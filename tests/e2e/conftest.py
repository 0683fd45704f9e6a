"""Fixtures of the end-to-end tests: the project's images, and one platform per test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.images import build_images, missing_images
from tests.e2e.platform import DockerPlatform
from tests.support.services import docker_available, need


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A client of the real Docker engine, with both project images on it.

    Missing images are built once with ``scripts/build-images.sh`` (CI builds them before the
    tests); if that fails the test fails under CI and is skipped elsewhere, with the reason.
    """
    need("Docker", docker_available())
    import docker

    client = docker.from_env(timeout=120)
    try:
        if missing_images(client):
            try:
                build_images()
            except Exception as exc:
                need(f"the orgplane images (building them failed: {exc})", False)
            missing = missing_images(client)
            need(f"the images {', '.join(missing)} after scripts/build-images.sh", not missing)
        yield client
    finally:
        client.close()


@pytest.fixture
def platform(docker_engine: Any) -> Iterator[DockerPlatform]:
    """Redis and the control plane of a fresh run, removed afterwards whatever happened."""
    need("redis-server (run in the base image)", shutil.which("redis-server") is not None)
    run = DockerPlatform(client=docker_engine, run_id=f"e2e-{uuid.uuid4().hex[:10]}")
    try:
        yield run
    finally:
        run.teardown()
