"""Fixtures of the SDK tests: a control-plane signing key and a fake control plane serving its
JWKS and heartbeats (``tests/instance/helpers.py``), and the Python example's image, built once
per session."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.images import CONTROL_PLANE_IMAGE, build_images, missing_images
from tests.instance.helpers import FakeControlPlane, Signer
from tests.support.services import REPO, docker_available, need

EXAMPLE_IMAGE = "orgplane-example-python:dev"
EXAMPLE_JS_IMAGE = "orgplane-example-js:dev"
JS_BUILD_SCRIPT = REPO / "sdk" / "js" / "example" / "build-image.sh"


@pytest.fixture(scope="session")
def example_python_image() -> str:
    """``orgplane-example-python:dev``, made by ``sdk/python/example/build-image.sh``
    (idempotent: a rerun with unchanged inputs is one ``docker image inspect``)."""
    need("Docker", docker_available())
    done = subprocess.run(
        ["bash", str(REPO / "sdk" / "python" / "example" / "build-image.sh")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    tail = (done.stdout + done.stderr)[-2000:]
    need(f"the image {EXAMPLE_IMAGE} (build-image.sh failed: {tail})", done.returncode == 0)
    return EXAMPLE_IMAGE


@pytest.fixture
def signer() -> Signer:
    """A signing key made by the control plane's own key code."""
    return Signer()


@pytest.fixture
def cp(signer: Signer) -> FakeControlPlane:
    """A fake control plane publishing ``signer`` in its JWKS."""
    return FakeControlPlane(signers=[signer])


@pytest.fixture(scope="session")
def example_js_image() -> Iterator[Any]:
    """A Docker client, with the control-plane image and the example's image built (once per
    session; ``build-image.sh`` reuses Docker's layer cache)."""
    need("Docker", docker_available())
    need("node and npm (to build the example's node_modules)", bool(shutil.which("npm")))
    import docker

    client = docker.from_env(timeout=120)
    try:
        if missing_images(client, (CONTROL_PLANE_IMAGE,)):
            build_images("control-plane")
        done = subprocess.run(
            ["bash", str(JS_BUILD_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"build-image.sh failed:\n{done.stdout}\n{done.stderr}"
        yield client
    finally:
        client.close()
