"""Fixtures of the SDK tests: a control-plane signing key and a fake control plane serving its
JWKS and heartbeats (``tests/instance/helpers.py``), and the Python example's image, built once
per session."""

from __future__ import annotations

import subprocess

import pytest

from tests.instance.helpers import FakeControlPlane, Signer
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


@pytest.fixture
def signer() -> Signer:
    """A signing key made by the control plane's own key code."""
    return Signer()


@pytest.fixture
def cp(signer: Signer) -> FakeControlPlane:
    """A fake control plane publishing ``signer`` in its JWKS."""
    return FakeControlPlane(signers=[signer])
