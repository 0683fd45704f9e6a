"""Two real org instances A and B beside a real control plane: every endpoint of B refuses A's
token and vice versa, and no canary of one org ever appears in an answer to the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.instance.processes import ControlPlane, OrgInstance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A control plane and instances A and B, each org with canary data."""
    root = tmp_path_factory.mktemp("cross-org")
    cp = ControlPlane(root / "cp", extra_env={"ORGPLANE_HEARTBEAT_INTERVAL": "0.5"})
    cp.data_dir.mkdir()
    cp.start()
    procs: list[Any] = [cp]
    try:
        orgs = [asyncio.run(cp.seed_org(slug, f"owner@{slug}.test")) for slug in ("alpha", "beta")]
        instances = []
        for org in orgs:
            instance = OrgInstance(
                org, cp, root / org["slug"], extra_env={"ORGPLANE_HEARTBEAT_INTERVAL": "0.5"}
            )
            instance.start()
            procs.append(instance)
            instances.append(instance)
        world = {"cp": cp, "A": instances[0], "B": instances[1]}
        for name, instance in (("A", instances[0]), ("B", instances[1])):
            token = cp.org_token(instance.org["email"], instance.org["slug"])
            world[name + "_token"] = token
            world[name + "_data"] = plant_canaries(instance, token, f"canary-{name}-{uuid.uuid4()}")
        yield world
    finally:
        for proc in reversed(procs):
            proc.stop()


def plant_canaries(instance: OrgInstance, token: str, canary: str) -> dict[str, str]:
    """A session, message, settings (plain and secret), runner and file holding ``canary``."""
    with instance.client(token) as c:
        sid = c.post("/api/v1/sessions", json={"title": canary}).json()["id"]
        assert c.post(f"/api/v1/sessions/{sid}/messages", json={"body": canary}).status_code == 201
        assert c.put("/api/v1/settings/canary", json={"value": canary}).status_code == 200
        assert (
            c.put("/api/v1/settings/secret", json={"value": canary, "secret": True}).status_code
            == 200
        )
        runner = c.post("/api/v1/runners", json={"name": canary}).json()
        file = c.post("/api/v1/files", params={"name": canary}, content=canary.encode()).json()
    return {
        "canary": canary,
        "session": sid,
        "runner": runner["runner"]["id"],
        "runner_token": runner["token"],
        "file": file["id"],
    }


def endpoints(data: dict[str, str]) -> list[tuple[str, str, Any]]:
    """Every endpoint of an instance, aimed at that org's own objects."""
    sid, fid, rid = data["session"], data["file"], data["runner"]
    return [
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/usage", None),
        ("GET", "/api/v1/sessions", None),
        ("POST", "/api/v1/sessions", {"title": "intruder"}),
        ("GET", f"/api/v1/sessions/{sid}", None),
        ("PATCH", f"/api/v1/sessions/{sid}", {"title": "pwned"}),
        ("DELETE", f"/api/v1/sessions/{sid}", None),
        ("GET", f"/api/v1/sessions/{sid}/messages", None),
        ("POST", f"/api/v1/sessions/{sid}/messages", {"body": "intruder"}),
        ("GET", "/api/v1/settings", None),
        ("GET", "/api/v1/settings/canary", None),
        ("PUT", "/api/v1/settings/canary", {"value": "pwned"}),
        ("DELETE", "/api/v1/settings/canary", None),
        ("GET", "/api/v1/runners", None),
        ("POST", "/api/v1/runners", {"name": "intruder"}),
        ("DELETE", f"/api/v1/runners/{rid}", None),
        ("GET", "/api/v1/files", None),
        ("POST", "/api/v1/files?name=intruder", b"x"),
        ("GET", f"/api/v1/files/{fid}", None),
        ("GET", f"/api/v1/files/{fid}/content", None),
        ("DELETE", f"/api/v1/files/{fid}", None),
    ]


def call(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return client.request(method, path, content=body)
    return client.request(method, path, json=body)


@pytest.mark.parametrize(("target", "intruder"), [("B", "A"), ("A", "B")])
def test_no_endpoint_of_one_org_answers_the_other_orgs_token(
    platform: dict[str, Any], target: str, intruder: str
) -> None:
    instance: OrgInstance = platform[target]
    own, foreign = platform[target + "_data"], platform[intruder + "_data"]
    canaries = (own["canary"], foreign["canary"])
    with instance.client(platform[intruder + "_token"]) as c:
        for method, path, body in endpoints(own):
            answer = call(c, method, path, body)
            assert not 200 <= answer.status_code < 300, (method, path, answer.status_code)
            assert answer.status_code == 401, (method, path, answer.text)
            assert not any(x in answer.text for x in canaries), (method, path)
    # The intruder's runner token at the target's runner heartbeat.
    with instance.client(foreign["runner_token"]) as c:
        beat = c.post("/api/v1/runners/heartbeat", json={})
        assert beat.status_code == 401
        assert foreign["canary"] not in beat.text
    # The intruder's own hostname at the target: refused before any token is looked at.
    intruder_host = platform[intruder].hostname
    with instance.client(platform[target + "_token"], host=intruder_host) as c:
        assert c.get("/api/v1/me").status_code == 421
    # The target's data is intact and its owner still sees it.
    with instance.client(platform[target + "_token"]) as c:
        titles = [s["title"] for s in c.get("/api/v1/sessions").json()["items"]]
        assert titles == [own["canary"]]
        assert c.get("/api/v1/settings/canary").json()["value"] == own["canary"]
        content = c.get(f"/api/v1/files/{own['file']}/content").content
        assert content == own["canary"].encode()
        everything = " ".join(
            c.get(p).text
            for p in (
                "/api/v1/sessions",
                "/api/v1/settings",
                "/api/v1/runners",
                "/api/v1/files",
                f"/api/v1/sessions/{own['session']}/messages",
            )
        )
        assert foreign["canary"] not in everything


@pytest.mark.parametrize(("target", "intruder"), [("B", "A"), ("A", "B")])
def test_the_event_stream_refuses_the_other_orgs_token(
    platform: dict[str, Any], target: str, intruder: str
) -> None:
    instance: OrgInstance = platform[target]
    sid = platform[target + "_data"]["session"]
    # The org's hostname in the URL (so in the one Host header), the instance's port to dial.
    url = f"ws://{instance.hostname}/api/v1/sessions/{sid}/events"

    async def attempt(token: str) -> str:
        try:
            async with websockets.connect(
                f"{url}?access_token={token}", host="127.0.0.1", port=instance.port, open_timeout=5
            ) as ws:
                await asyncio.to_thread(post_message, instance, platform[target + "_token"], sid)
                return str(await asyncio.wait_for(ws.recv(), timeout=5))
        except websockets.exceptions.InvalidStatus as exc:
            return f"refused {exc.response.status_code}"
        except websockets.exceptions.ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else None}"

    # Accepted, then closed with the documented code (docs/org-instance.md).
    assert asyncio.run(attempt(platform[intruder + "_token"])) == "closed 4401"
    assert "live event" in asyncio.run(attempt(platform[target + "_token"]))


def post_message(instance: OrgInstance, token: str, sid: str) -> None:
    with instance.client(token) as c:
        sent = c.post(f"/api/v1/sessions/{sid}/messages", json={"body": "live event"})
        assert sent.status_code == 201


def test_both_instances_report_heartbeats(platform: dict[str, Any]) -> None:
    cp: ControlPlane = platform["cp"]
    for name in ("A", "B"):
        row = asyncio.run(cp.instance_row(platform[name].org["org_id"]))
        assert row.last_heartbeat_at is not None
        assert row.health == "ok"
