"""The staged-rollout proof on the real Docker engine: 20 orgs with data, two more image tags
of the instance (a good one, and a broken one whose container runs but never serves), a
control-plane restart in the middle of a rollout, and a rollback that keeps every org's data.

The tags are made by the test (a tag of ``orgplane-instance:dev``, and an image built
``FROM`` it whose entry point only sleeps) and removed afterwards; both carry the label
``orgplane.test=wt-rollout``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backups.live import Live, admin_headers, read_data, wait_serving
from tests.fleet.rollout_live import (
    add_versions,
    broken_rollout_rolled_back,
    create_rollout,
    org_version,
    orgs_with_data,
    rollout,
    wait_rollout,
)
from tests.support.docker_run import gateway_of, run_network
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.services import docker_available, need

pytestmark = [pytest.mark.slow, pytest.mark.docker]

INSTANCE_IMAGE = "orgplane-instance:dev"
ORGS = 20
BROKEN = f"FROM {INSTANCE_IMAGE}\nLABEL orgplane.test=wt-rollout\n" + (
    'ENTRYPOINT ["python", "-c", "import time; time.sleep(86400)"]\n'
)


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
def docker_world() -> Iterator[dict[str, str]]:
    """A network of the test's, the good and broken tags; everything removed afterwards."""
    need("Docker", docker_available())
    import docker

    client = docker.from_env(timeout=300)
    run_id = f"t-{uuid.uuid4().hex[:10]}"
    good, broken = (
        f"orgplane-instance:rollout-good-{run_id}",
        f"orgplane-instance:rollout-broken-{run_id}",
    )
    try:
        try:
            base = client.images.get(INSTANCE_IMAGE)
        except docker.errors.ImageNotFound:
            need(f"the image {INSTANCE_IMAGE} (scripts/build-images.sh)", False)
        base.tag(good)
        client.images.build(
            fileobj=io.BytesIO(BROKEN.encode()),
            tag=broken,
            rm=True,
            labels={"orgplane.test": "wt-rollout"},
        )
        labels = {"orgplane.test": "wt-rollout"}
        try:
            with run_network(client, run_id, name=f"orgplane-{run_id}", labels=labels) as network:
                yield {
                    "run_id": run_id,
                    "good": good,
                    "broken": broken,
                    "network": str(network.name),
                    "gateway": gateway_of(network),
                }
        finally:
            for tag in (good, broken):
                client.images.remove(tag, noprune=False)
    finally:
        client.close()


@pytest.fixture
def start(
    make_settings: Any, unused_tcp_port: int, tmp_path: Path, docker_world: dict[str, str]
) -> Any:
    port, gateway = unused_tcp_port, docker_world["gateway"]
    env = {
        **FAST_RECONCILER,
        "ORGPLANE_RECONCILE_INTERVAL": "1",
        "ORGPLANE_HEARTBEAT_INTERVAL": "2",
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_PROVISIONER": "docker",
        "ORGPLANE_DEPLOYMENT_ID": docker_world["run_id"],
        "ORGPLANE_INSTANCE_IMAGE": INSTANCE_IMAGE,
        "ORGPLANE_DOCKER_NETWORK": docker_world["network"],
        "ORGPLANE_DOCKER_PUBLISH_PORTS": "true",
        "ORGPLANE_INSTANCE_CONTROL_PLANE_URL": f"http://{gateway}:{port}",
        "ORGPLANE_BACKUP_DIR": str(tmp_path / "backups"),
        "ORGPLANE_LEASE_SECONDS": "5",
    }
    admin: dict[str, str] = {}

    @asynccontextmanager
    async def run(*, keep_instances: bool = False) -> AsyncIterator[Live]:
        settings = make_settings(**env)
        async with (
            serve_control_plane(
                settings, port, also_on=[gateway], keep_instances=keep_instances
            ) as app,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http,
        ):
            if not admin:
                admin.update(await admin_headers(app, http))
            yield Live(http=http, app=app, admin=dict(admin))

    return run


async def test_rollouts_over_20_docker_orgs(start: Any, docker_world: dict[str, str]) -> None:
    slugs = [f"fleet-{n:02d}" for n in range(ORGS)]
    async with start(keep_instances=True) as live:
        await add_versions(
            live,
            {"v1": INSTANCE_IMAGE, "v2": docker_world["good"], "v3": docker_world["broken"]},
        )
        expected = await orgs_with_data(live, slugs, timeout=300, repeat=1000)
        good = await create_rollout(
            live,
            to_version="v2",
            from_version="v1",
            target={"kind": "all"},
            waves=[1, "25%", "100%"],
            max_concurrent=4,
            health_deadline_seconds=120,
        )
        assert good["wave_count"] == 3
        # Kill the control plane once the second wave is under way.
        await wait_rollout(
            live,
            good["id"],
            lambda r: r["current_wave"] >= 1 and r["counts"].get("upgraded", 0) >= 2,
            "the second wave under way",
            timeout=300,
        )
    async with start(keep_instances=True) as live:
        assert (await rollout(live, good["id"]))["state"] == "running"
        done = await wait_rollout(
            live, good["id"], lambda r: r["state"] == "finished", "v2 everywhere", timeout=600
        )
        detail = await rollout(live, good["id"])
        assert done["counts"] == {"upgraded": ORGS}, [o for o in detail["orgs"] if o["reason"]]
        assert sorted(o["wave"] for o in detail["orgs"]) == [0] + [1] * 4 + [2] * 15
        for slug in slugs:
            assert (await org_version(live, slug))["reported_version"] == "v2"
        fleet = (await live.http.get("/api/v1/fleet/versions", headers=live.admin)).json()["items"]
        assert {r["version"]: r["orgs"] for r in fleet}["v2"] == ORGS

        await broken_rollout_rolled_back(
            live,
            orgs=ORGS,
            timeout=300,
            to_version="v3",
            from_version="v2",
            max_concurrent=4,
            health_deadline_seconds=30,
        )
        for slug in slugs:
            await wait_serving(live, slug, timeout=120)
            assert await read_data(live, slug) == expected[slug], slug
            assert (await org_version(live, slug))["reported_version"] == "v2"
