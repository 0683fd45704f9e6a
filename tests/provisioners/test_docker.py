"""The docker backend against the real Docker engine, with the image built from the project.

Proves, on the engine's own inspect data: the container runs as uid 10001 with a read-only root
filesystem, a tmpfs /tmp, no capabilities, no-new-privileges, a pids limit, the plan's CPU and
memory, the unless-stopped policy, no Docker socket or host path, its port published on 127.0.0.1
only, and Traefik labels for its hostnames; no engine health check unless the options ask for
one, and then the image's at the interval asked. A changed spec replaces the container and keeps
the volume's data; a user network gives an endpoint by container name; a container that is not ours
but holds our name (or a volume with our volume's name) stops the apply and is left alone; a
missing image, or one carrying Traefik or orgplane labels, is a permanent error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orgplane_wire.contract import Env
from provisioners.base import ProvisionerOptions
from provisioners.docker import DockerProvisioner
from provisioners.docker.container_spec import container_name
from provisioners.docker.container_status import inspect_attrs, settled, status_of
from provisioners.errors import PermanentProvisionerError
from tests.provisioners.harness import TEST_RUN_LABEL, make_spec, wait_for_state
from tests.support.wait import WaitTimeout, eventually

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.usefixtures("docker_sweep")]


@pytest.fixture
async def provisioner(
    docker_client: Any, instance_image: str, run_id: str
) -> AsyncIterator[DockerProvisioner]:
    options = ProvisionerOptions(deployment_id=run_id, docker_publish_ports=True)
    provisioner = DockerProvisioner(options=options, client=docker_client)
    yield provisioner
    await provisioner.close()  # stops following the engine's events (the client is shared)


async def test_the_container_is_hardened(
    provisioner: DockerProvisioner, docker_client: Any, run_id: str
) -> None:
    spec = make_spec(run_id=run_id, hostnames=("acme.orgs.example.com",))
    status = await provisioner.apply(spec=spec)
    container = docker_client.containers.get(status.handle["container_id"])
    host, config = container.attrs["HostConfig"], container.attrs["Config"]

    assert config["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True
    assert "/tmp" in host["Tmpfs"]
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Privileged"] is False
    assert host["PidsLimit"] == 256
    assert host["NanoCpus"] == 500_000_000
    assert host["CpuShares"] == 512
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    mounts = container.attrs["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [
        ("volume", spec.data_volume, "/data")
    ]
    assert not any("docker.sock" in str(m) for m in mounts)
    bindings = host["PortBindings"]["8000/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    labels = config["Labels"]
    assert any(
        k.endswith(".rule") and v == "Host(`acme.orgs.example.com`)" for k, v in labels.items()
    )
    assert labels["orgplane.managed-by"] == run_id
    assert labels["orgplane.org-id"] == spec.org_id
    assert spec.env[Env.INSTANCE_CREDENTIAL] not in str(labels)

    running = await wait_for_state(provisioner, spec.org_id, {"running"})
    whoami = await asyncio.to_thread(
        container.exec_run, ["python", "-c", "import os; print(os.getuid())"]
    )
    assert whoami.output.decode().strip() == "10001"
    assert running.endpoint.startswith("http://127.0.0.1:")


async def test_the_engine_checks_health_only_when_asked(
    provisioner: DockerProvisioner, docker_client: Any, instance_image: str, run_id: str
) -> None:
    # The image has a health check (for a container run by hand); an org's container by
    # default does not (heartbeats are its health), and one of a deployment that asks for
    # checks runs the image's own at the interval asked.
    image_check = docker_client.images.get(instance_image).attrs["Config"]["Healthcheck"]
    assert "/healthz" in " ".join(image_check["Test"])
    plain = await provisioner.apply(spec=make_spec(run_id=run_id, slug="plain"))
    container = docker_client.containers.get(plain.handle["container_id"])
    assert container.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]
    await wait_for_state(provisioner, plain.org_id, {"running"})
    container.reload()
    assert "Health" not in container.attrs["State"]

    options = dataclasses.replace(provisioner.options, docker_health_interval=1.0)
    checking = DockerProvisioner(options=options, client=docker_client)
    checked = await checking.apply(spec=make_spec(run_id=run_id, slug="checked"))
    container = docker_client.containers.get(checked.handle["container_id"])
    config = container.attrs["Config"]["Healthcheck"]
    assert config["Test"] == image_check["Test"]
    assert config["Interval"] == 1_000_000_000
    health: dict[str, Any] = {}

    def healthy() -> bool:  # the image's check passes once the app serves
        nonlocal health
        container.reload()
        health = container.attrs["State"].get("Health") or {}
        return health.get("Status") == "healthy"

    try:
        await eventually(lambda: asyncio.to_thread(healthy), what="the container healthy")
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; its health: {health}") from None


async def test_a_new_spec_replaces_the_container_and_keeps_the_data(
    provisioner: DockerProvisioner, docker_client: Any, run_id: str
) -> None:
    spec = make_spec(run_id=run_id)
    first = await provisioner.apply(spec=spec)
    await wait_for_state(provisioner, spec.org_id, {"running"})
    old = docker_client.containers.get(first.handle["container_id"])
    await asyncio.to_thread(
        old.exec_run, ["python", "-c", "open('/data/kept.txt', 'w').write('still here')"]
    )

    changed = dataclasses.replace(spec, env={**spec.env, Env.HEARTBEAT_INTERVAL: "12"})
    second = await provisioner.apply(spec=changed)
    assert second.handle["container_id"] != first.handle["container_id"]
    new = docker_client.containers.get(second.handle["container_id"])
    read = await asyncio.to_thread(
        new.exec_run, ["python", "-c", "print(open('/data/kept.txt').read())"]
    )
    assert read.output.decode().strip() == "still here"
    assert new.attrs["Config"]["Env"].count(f"{Env.HEARTBEAT_INTERVAL}=12") == 1


async def test_a_user_network_gives_an_endpoint_by_name(
    docker_client: Any, instance_image: str, run_id: str
) -> None:
    network = docker_client.networks.create(f"orgplane-{run_id}", labels={TEST_RUN_LABEL: run_id})
    try:
        options = ProvisionerOptions(deployment_id=run_id, docker_network=network.name)
        provisioner = DockerProvisioner(options=options, client=docker_client)
        spec = make_spec(run_id=run_id, hostnames=("acme.orgs.example.com",))
        status = await provisioner.apply(spec=spec)
        name = container_name(spec)
        assert status.endpoint in ("", f"http://{name}:8000")
        container = docker_client.containers.get(name)
        assert list(container.attrs["NetworkSettings"]["Networks"]) == [network.name]
        assert container.labels["traefik.docker.network"] == network.name
        assert not container.attrs["HostConfig"]["PortBindings"]
        await provisioner.remove(org_id=spec.org_id, keep_data=False)
    finally:
        network.remove()


async def test_a_container_with_our_name_that_is_not_ours_is_left_alone(
    provisioner: DockerProvisioner, docker_client: Any, instance_image: str, run_id: str
) -> None:
    spec = make_spec(run_id=run_id)
    squatter = docker_client.containers.create(
        instance_image,
        name=container_name(spec),
        entrypoint=["sleep", "300"],
        labels={TEST_RUN_LABEL: run_id, "orgplane.org-id": spec.org_id},
    )
    with pytest.raises(PermanentProvisionerError, match="not manage"):
        await provisioner.apply(spec=spec)
    await provisioner.remove(org_id=spec.org_id, keep_data=False)
    squatter.reload()
    assert squatter.status == "created"
    assert squatter.name == container_name(spec)


async def test_a_missing_image_is_a_permanent_error(
    provisioner: DockerProvisioner, run_id: str
) -> None:
    spec = make_spec(run_id=run_id, image=f"orgplane-missing-{run_id}:none")
    with pytest.raises(PermanentProvisionerError, match="could not be pulled"):
        await provisioner.apply(spec=spec)


async def test_an_image_carrying_routing_labels_is_never_run(
    provisioner: DockerProvisioner, docker_client: Any, instance_image: str, run_id: str
) -> None:
    """The engine copies an image's labels onto its containers, so an image labelled with a
    Traefik router for another org's host would have claimed that host. Failed on the old code:
    the apply made and started the container, whose labels held the image's router."""
    tag = f"orgplane-test-labelled:{run_id}"
    dockerfile = (
        f"FROM {instance_image}\n"
        "LABEL traefik.http.routers.evil.rule=Host(`victim.example.com`) "
        "traefik.http.routers.evil.service=evil\n"
    )
    await asyncio.to_thread(
        docker_client.images.build, fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True
    )
    try:
        spec = make_spec(run_id=run_id, image=tag, hostnames=("acme.orgs.example.com",))
        refused = re.escape("traefik.http.routers.evil.rule")
        with pytest.raises(PermanentProvisionerError, match=refused):
            await provisioner.apply(spec=spec)
        found = docker_client.containers.list(
            all=True, filters={"label": [f"{TEST_RUN_LABEL}={run_id}"]}
        )
        assert found == []
    finally:
        docker_client.images.remove(tag, force=True)


async def test_a_volume_with_our_name_that_is_not_ours_is_left_alone(
    provisioner: DockerProvisioner, docker_client: Any, run_id: str
) -> None:
    spec = make_spec(run_id=run_id)
    foreign = docker_client.volumes.create(name=spec.data_volume, labels={TEST_RUN_LABEL: run_id})
    with pytest.raises(PermanentProvisionerError, match="not this deployment's volume"):
        await provisioner.apply(spec=spec)
    await provisioner.remove(org_id=spec.org_id, keep_data=False)
    assert docker_client.volumes.get(foreign.name).attrs["Labels"] == {TEST_RUN_LABEL: run_id}
    assert await provisioner.status(org_id=spec.org_id) is None


async def test_a_settled_containers_list_entry_gives_the_same_status_as_its_inspect(
    provisioner: DockerProvisioner, docker_client: Any, run_id: str
) -> None:
    # list() reads running, settled containers from the engine's list entries (one call for
    # every container) and inspects only the others: both must give the same status.
    spec = make_spec(run_id=run_id, hostnames=("listed.orgs.example.com",))
    applied = await provisioner.apply(spec=spec)
    container = docker_client.containers.get(applied.handle["container_id"])
    (summary,) = docker_client.api.containers(all=True, filters={"id": container.id})
    summary = {**summary, "Status": "Up 9 seconds (healthy)"}  # settled, whatever the clock says
    container.attrs["State"]["Health"] = {"Status": "healthy"}
    assert settled(summary)
    from_list = await status_of(
        docker_client.containers.prepare_model(inspect_attrs(summary)), options=provisioner.options
    )
    from_inspect = await status_of(container, options=provisioner.options)
    assert from_list == from_inspect
    assert from_list.endpoint.startswith("http://127.0.0.1:")
    assert from_list.handle["volumes"] == [spec.data_volume]
    assert from_list.labels["orgplane.org-id"] == spec.org_id
    # Anything but running and settled is inspected.
    for status in ("Up 1 second (health: starting)", "Up 2 minutes (unhealthy)"):
        assert not settled({**summary, "Status": status})
    assert not settled({**summary, "State": "exited", "Status": "Exited (0) 1 second ago"})
    listed = {s.org_id: s for s in await provisioner.list()}
    assert listed[spec.org_id].endpoint == from_inspect.endpoint


async def test_an_unchanged_fleet_is_not_listed_again_until_the_engine_reports_a_change(
    provisioner: DockerProvisioner, docker_client: Any, run_id: str, monkeypatch: Any
) -> None:
    """The reconciler lists every instance each pass (2 s): an idle fleet is answered from the
    last listing while the engine's event stream reports nothing, and a container removed by
    hand shows at the next pass. Failed on the old code: every list() asked the engine."""
    spec = make_spec(run_id=run_id)
    await provisioner.apply(spec=spec)
    asked: list[int] = []
    real = docker_client.api.containers
    monkeypatch.setattr(
        docker_client.api, "containers", lambda *a, **k: asked.append(1) or real(*a, **k)
    )

    async def listed_without_asking() -> bool:
        first = await provisioner.list()
        before = len(asked)
        again = await provisioner.list()
        return len(asked) == before and again == first

    await eventually(listed_without_asking, what="a listing answered again", timeout=10)
    (running,) = await provisioner.list()
    assert running.org_id == spec.org_id
    assert running.state == "running"
    docker_client.containers.get(running.handle["container_id"]).remove(force=True)

    async def gone() -> bool:
        statuses = {s.org_id: s for s in await provisioner.list()}
        return statuses[spec.org_id].state == "absent"  # its volume is left

    await eventually(gone, what="the removal seen", timeout=10)
