"""The images scripts/build-images.sh builds (deploy/Dockerfile.instance, .control-plane).

Proves: both run as uid 10001, carry OCI labels and a HEALTHCHECK; the instance image starts
``python -m org_instance``, holds no pip, no compiler and none of the control plane's
dependencies (docker, kubernetes, asyncpg, alembic, SQLAlchemy, pydantic, Pillow: it is built
from the ``instance`` extra), and its health check one-liner fails where nothing
listens and passes against a running instance; the control-plane image's entry point is ``orgplane``
with ``serve`` by default, and ``migrate`` (what compose runs first) migrates a fresh database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.provisioners.harness import TEST_RUN_LABEL, make_spec
from tests.support.wait import WaitTimeout, eventually

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.usefixtures("docker_sweep")]

CONTROL_PLANE_IMAGE = "orgplane-control-plane:dev"


def _run(client: Any, image: str, run_id: str, **kwargs: Any) -> str:
    output: bytes = client.containers.run(
        image, remove=True, labels={TEST_RUN_LABEL: run_id}, **kwargs
    )
    return output.decode()


def test_the_instance_image_is_small_and_unprivileged(
    docker_client: Any, instance_image: str, run_id: str
) -> None:
    config = docker_client.images.get(instance_image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "-m", "org_instance"]
    assert "8000/tcp" in config["ExposedPorts"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert config["Labels"]["org.opencontainers.image.title"] == "orgplane-instance"

    probe = (
        "import importlib.util as u, os, shutil; "
        "print(os.getuid(), [m for m in ('pip', 'docker', 'kubernetes', 'asyncpg', 'alembic', "
        "'sqlalchemy', 'pydantic', 'PIL', 'org_instance', 'litestar') if u.find_spec(m)], "
        "shutil.which('gcc'), shutil.which('cc'))"
    )
    seen = _run(docker_client, instance_image, run_id, entrypoint=["python", "-c", probe])
    assert seen.strip() == "10001 ['org_instance', 'litestar'] None None"


async def test_the_health_check_fails_without_and_passes_with_an_instance(
    docker_client: Any, instance_image: str, run_id: str
) -> None:
    check = docker_client.images.get(instance_image).attrs["Config"]["Healthcheck"]["Test"]
    assert check[0] == "CMD"
    labels = {TEST_RUN_LABEL: run_id}
    idle = docker_client.containers.run(
        instance_image, detach=True, entrypoint=["sleep", "60"], labels=labels
    )
    assert (await asyncio.to_thread(idle.exec_run, check[1:])).exit_code != 0

    spec = make_spec(run_id=run_id)
    volume = docker_client.volumes.create(f"orgplane-image-test-{run_id}", labels=labels)
    instance = docker_client.containers.run(
        instance_image,
        detach=True,
        environment=dict(spec.env),
        labels=labels,
        read_only=True,
        tmpfs={"/tmp": "size=16m"},
        volumes={volume.name: {"bind": "/data", "mode": "rw"}},
    )

    async def check_passes() -> bool:
        return (await asyncio.to_thread(instance.exec_run, check[1:])).exit_code == 0

    try:
        await eventually(check_passes, what="the image's health check passing", interval=0.2)
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}\n{instance.logs()[-2000:]!r}") from None


def test_the_control_plane_image_serves_and_migrates(
    docker_client: Any, instance_image: str, run_id: str
) -> None:
    config = docker_client.images.get(CONTROL_PLANE_IMAGE).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["orgplane"]
    assert config["Cmd"] == ["serve"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert config["Labels"]["org.opencontainers.image.title"] == "orgplane-control-plane"

    migrated = _run(docker_client, CONTROL_PLANE_IMAGE, run_id, command=["migrate"])
    assert migrated.startswith("database at migration ")
