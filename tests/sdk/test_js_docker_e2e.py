"""End to end on a real Docker engine: the JavaScript example is an org instance.

The control plane runs from its image with the ``docker`` provisioner (as in
``tests/e2e/test_docker_platform.py``) and ``ORGPLANE_INSTANCE_IMAGE=orgplane-example-js:dev``,
the image ``sdk/js/example/build-image.sh`` builds (Node's http + ``@orgplane/instance-sdk``).
Two orgs are created through the API; their containers reach ``running`` by heartbeating; a
token from a real RFC 8693 exchange gets 200 on ``/api/v1/me`` (with its claims) at its own
org's instance and 401 at the other's; a foreign Host is refused with 421; ``docker stop``
(SIGTERM) ends an instance with exit code 0 within the contract's 10 s.

One test function, so the platform starts once even when xdist spreads tests over workers.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from tests.e2e.api import ControlPlane, Org
from tests.e2e.platform import ADMIN_EMAIL, BASE_DOMAIN, PUBLIC_URL, DockerPlatform
from tests.sdk.conftest import EXAMPLE_JS_IMAGE as EXAMPLE_IMAGE
from tests.support.services import need
from tests.support.wait import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RUNNING_TIMEOUT = 90.0
#: The contract's deadline between SIGTERM and the end of an instance.
STOP_DEADLINE = 10.0


@dataclass
class ExamplePlatform(DockerPlatform):
    """The end-to-end platform, provisioning the JavaScript example instead of the workspace
    instance, without a warm pool (the example has no pool mode)."""

    def control_plane_env(self) -> dict[str, str]:
        return {
            **super().control_plane_env(),
            "ORGPLANE_INSTANCE_IMAGE": EXAMPLE_IMAGE,
            "ORGPLANE_WARM_POOL_SIZE": "0",
        }


@pytest.fixture
def platform(example_js_image: Any) -> Iterator[ExamplePlatform]:
    """A fresh run (its objects labelled ``opsdkjs-...``), removed afterwards."""
    need("redis-server (run in the base image)", shutil.which("redis-server") is not None)
    run = ExamplePlatform(client=example_js_image, run_id=f"opsdkjs-{uuid.uuid4().hex[:10]}")
    try:
        yield run
    finally:
        run.teardown()


def test_the_js_example_runs_as_an_org_instance(platform: ExamplePlatform) -> None:
    platform.start()
    cp = ControlPlane(platform.control_plane_url, reach=platform.reachable)
    try:
        cp.login(ADMIN_EMAIL, platform.admin_password)
        orgs = [cp.create_org(slug, BASE_DOMAIN) for slug in ("jsalpha", "jsbravo")]
        cp.wait_running(orgs, timeout=RUNNING_TIMEOUT, why=platform.logs)
        heartbeats_arrive(cp, orgs, platform)
        tokens_work_at_their_own_org_only(cp, orgs)
        sigterm_stops_within_the_deadline(cp, orgs[0], platform)
    finally:
        cp.close()


def heartbeats_arrive(cp: ControlPlane, orgs: list[Org], platform: DockerPlatform) -> None:
    """Each org runs the example's image and keeps heartbeating (``last_heartbeat_at`` moves)."""
    for org in orgs:
        body = cp.instance(org)
        org_container = platform.client.containers.get(urlsplit(body["endpoint"]).hostname)
        assert EXAMPLE_IMAGE in org_container.image.tags, org_container.image.tags
        first = body["last_heartbeat_at"]
        assert first, body
        wait_until(
            lambda org=org, first=first: cp.instance(org)["last_heartbeat_at"] != first,
            what=f"a later heartbeat of {org.slug}",
            timeout=30,
            interval=0.5,
        )


def tokens_work_at_their_own_org_only(cp: ControlPlane, orgs: list[Org]) -> None:
    """A token from a real exchange reads its claims at its own instance, and is 401 at the
    other org's; a foreign Host is 421 even with a valid token; probes need nothing."""
    for org in orgs:
        org.token = cp.exchange(org)
        claims = jwt.decode(org.token, options={"verify_signature": False})
        me = org.call("GET", "/api/v1/me")
        assert me.status_code == 200, me.text
        body = me.json()
        assert (body["org_id"], body["org_slug"], body["iss"]) == (org.id, org.slug, PUBLIC_URL)
        assert body["sub"] == claims["sub"]
        assert httpx.get(f"{org.endpoint}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{org.endpoint}/readyz", timeout=10).status_code == 200
    alpha, bravo = orgs
    for org, other in ((alpha, bravo), (bravo, alpha)):
        foreign_token = org.call("GET", "/api/v1/me", token=other.token)
        assert foreign_token.status_code == 401, foreign_token.text
        assert foreign_token.json()["code"] == "invalid_token"
        assert 'error="invalid_token"' in foreign_token.headers["www-authenticate"]
        foreign_host = org.call("GET", "/api/v1/me", host=other.host)
        assert foreign_host.status_code == 421, foreign_host.text
        assert foreign_host.json()["code"] == "misdirected_request"
        no_token = httpx.get(f"{org.endpoint}/api/v1/me", headers={"Host": org.host}, timeout=10)
        assert no_token.status_code == 401, no_token.text


def sigterm_stops_within_the_deadline(cp: ControlPlane, org: Org, platform: DockerPlatform) -> None:
    """``docker stop`` sends SIGTERM: the instance exits 0, well before the engine's SIGKILL."""
    container = platform.client.containers.get(urlsplit(cp.instance(org)["endpoint"]).hostname)
    started = time.monotonic()
    container.stop(timeout=int(STOP_DEADLINE))
    took = time.monotonic() - started
    container.reload()
    state = container.attrs["State"]
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), state
    assert took < STOP_DEADLINE, took
    logs = bytes(container.logs(tail=20)).decode(errors="replace")
    assert '"event":"stopped"' in logs, logs
