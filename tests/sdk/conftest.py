"""Fixtures of the SDK tests: the Python example's image, built once per session."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.services import REPO, docker_available, need

EXAMPLE_IMAGE = "orgplane-example-python:dev"


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
