"""The Python SDK's example (sdk/python/example, FastAPI) as a real org instance: a control
plane with the Docker provisioner runs it for an org from its image, it heartbeats until the org
is ``running``, and it serves tokens of a real RFC 8693 exchange for its org (its claims, notes
kept in its data directory) while refusing another org's token, no token and a foreign Host;
it stops gracefully on SIGTERM and its notes outlive the container.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from control_plane.settings import Settings
from provisioners.naming import MANAGED_BY_LABEL, ORG_ID_LABEL
from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.support.docker_run import gateway_of, run_network
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.wait import eventually

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
def docker_run(example_python_image: str) -> Iterator[dict[str, Any]]:
    """A network of this test's; on the way out, every container, volume and the network of
    its deployment id are removed, whatever happened."""
    import docker

    run_id = f"opsdkpy-{uuid.uuid4().hex[:8]}"
    client = docker.from_env(timeout=120)
    try:
        labels = {MANAGED_BY_LABEL: run_id}
        with run_network(client, run_id, name=run_id, labels=labels) as network:
            yield {
                "client": client,
                "ORGPLANE_PROVISIONER": "docker",
                "ORGPLANE_DEPLOYMENT_ID": run_id,
                "ORGPLANE_INSTANCE_IMAGE": example_python_image,
                "ORGPLANE_DOCKER_NETWORK": str(network.name),
                "ORGPLANE_DOCKER_PUBLISH_PORTS": "true",
                "gateway": gateway_of(network),
            }
    finally:
        client.close()


@pytest.fixture
async def platform(make_settings: Any, unused_tcp_port: int, docker_run: dict[str, Any]) -> Any:
    """The control plane on the host, reachable by the containers at the network's gateway."""
    port, gateway = unused_tcp_port, docker_run["gateway"]
    settings: Settings = make_settings(
        **FAST_RECONCILER,
        **{k: v for k, v in docker_run.items() if k.startswith("ORGPLANE_")},
        ORGPLANE_PORT=str(port),
        ORGPLANE_INSTANCE_CONTROL_PLANE_URL=f"http://{gateway}:{port}",
    )
    async with (
        serve_control_plane(settings, port, also_on=[gateway]) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api,
    ):
        yield api, app, docker_run["client"]


async def test_the_example_is_an_org_instance(platform: Any, example_python_image: str) -> None:
    api, app, docker_engine = platform
    admin = await admin_headers(app, api)
    for slug in ("acme", "beta"):
        made = await api.post("/api/v1/orgs", headers=admin, json={"name": slug, "slug": slug})
        assert made.status_code == 202, made.text
    # Only the example's heartbeats take an org to running.
    running = await wait_phase(api, admin, "acme", "running")
    assert running["last_heartbeat_at"]
    assert running["image"] == example_python_image
    acme = {"Authorization": f"Bearer {await org_token(api, admin, 'acme')}"}
    await wait_phase(api, admin, "beta", "running")
    beta = {"Authorization": f"Bearer {await org_token(api, admin, 'beta')}"}

    async with httpx.AsyncClient(base_url=running["endpoint"], timeout=30) as instance:
        me = await instance.get("/api/v1/me", headers=acme)
        assert me.status_code == 200, me.text
        claims = me.json()
        org = (await api.get("/api/v1/orgs/acme", headers=admin)).json()
        assert claims["org_id"] == org["id"]
        assert claims["org_slug"] == "acme"
        assert claims["aud"] == f"urn:orgplane:org:{org['id']}"
        assert claims["org_role"] == "owner"

        made = await instance.post("/api/v1/notes", headers=acme, json={"text": "hello"})
        assert made.status_code == 201, made.text
        listed = (await instance.get("/api/v1/notes", headers=acme)).json()["items"]
        assert [(n["text"], n["author"]) for n in listed] == [("hello", claims["sub"])]
        bad = await instance.post("/api/v1/notes", headers=acme, json={"text": ""})
        assert bad.status_code == 400, bad.text
        assert bad.json()["code"] == "validation_error"

        # Another org's token, signed by the same control plane: refused.
        crossed = await instance.get("/api/v1/me", headers=beta)
        assert crossed.status_code == 401, crossed.text
        assert crossed.json()["code"] == "invalid_token"
        assert crossed.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        anonymous = await instance.get("/api/v1/notes")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"

        # A foreign Host, even with the right token: refused before anything else.
        foreign = await instance.get("/api/v1/me", headers={**acme, "Host": "evil.example"})
        assert foreign.status_code == 421, foreign.text
        assert foreign.headers["content-type"] == "application/problem+json"
        assert foreign.json()["code"] == "misdirected_request"
        # The probes answer whatever the Host, without a token.
        for probe in ("/healthz", "/readyz"):
            answer = await instance.get(probe, headers={"Host": "10.1.2.3:8000"})
            assert answer.status_code == 200, (probe, answer.text)
    # beta's own notes are its own (its instance, its data directory).
    beta_state = await wait_phase(api, admin, "beta", "running")
    async with httpx.AsyncClient(base_url=beta_state["endpoint"], timeout=30) as other:
        assert (await other.get("/api/v1/notes", headers=beta)).json() == {"items": []}

    # SIGTERM stops it gracefully within the contract's 10 s (exit 0, not the engine's SIGKILL)
    # and its notes outlive the container.
    (container,) = docker_engine.containers.list(
        all=True, filters={"label": [f"{ORG_ID_LABEL}={claims['org_id']}"]}
    )
    await asyncio.to_thread(container.stop, timeout=10)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0, container.logs(tail=20)
    await asyncio.to_thread(container.start)

    async def notes_again() -> list[Any] | None:
        # Asked at the port the engine published this time (a restart publishes a new one).
        container.reload()
        ports = container.attrs["NetworkSettings"]["Ports"].get("8000/tcp") or []
        if not ports:
            return None
        url = f"http://127.0.0.1:{ports[0]['HostPort']}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as restarted:
                answer = await restarted.get("/api/v1/notes", headers=acme)
        except httpx.TransportError:
            return None
        return answer.json()["items"] if answer.status_code == 200 else None

    kept = await eventually(notes_again, what="acme's notes after a restart", interval=0.2)
    assert [n["text"] for n in kept] == ["hello"]
