"""The SDK's ASGI guard and ``OrgInstance`` wiring, in process: an app behind
``OrgInstance.wrap`` reached through httpx's ASGI transport (HTTP) or driven message by message
(WebSocket and lifespan), with real control-plane keys and a fake control plane's JWKS and
heartbeat endpoint (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from orgplane_sdk import ConfigError, InstanceConfig, OrgInstance
from orgplane_sdk.contract import Env, org_audience
from orgplane_sdk.middleware import Message, Receive, Scope, Send

from tests.instance.helpers import ISSUER, JWKS_URL, FakeControlPlane, Signer
from tests.support.wait import eventually

ORG = "org-" + "a" * 28
HOST = "acme.orgs.test"


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The app: answers its claims on /api/*, 404 elsewhere; has no lifespan."""
    if scope["type"] != "http":
        raise RuntimeError(f"no {scope['type']} here")
    if not scope["path"].startswith("/api/"):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    body = json.dumps(scope["state"]["claims"]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    values = {
        Env.ORG_ID: ORG,
        Env.INSTANCE_CREDENTIAL: "opi_test-credential-0123456789",
        Env.DATA_DIR: str(tmp_path),
        Env.CONTROL_PLANE_URL: ISSUER,
        Env.HOSTNAMES: f"{HOST}, www.acme.test",
        Env.INTERNAL_HOSTS: "orgplane-acme-1234",
        Env.HEARTBEAT_INTERVAL: "0.1",
        Env.LIMITS: '{"max_sessions": 5}',
    }
    return {**values, **overrides}


@pytest.fixture
async def org(tmp_path: Path, cp: FakeControlPlane) -> AsyncIterator[OrgInstance]:
    instance = OrgInstance.from_env(env(tmp_path), http=cp.client())
    yield instance
    await instance.stop()


@pytest.fixture
async def client(org: OrgInstance) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=org.wrap(echo))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_environment_configures_the_instance(tmp_path: Path) -> None:
    config = InstanceConfig.from_env(env(tmp_path))
    assert config.jwks_url == JWKS_URL
    assert config.issuer == ISSUER
    assert config.audience == org_audience(ORG)
    assert config.hostnames == (HOST, "www.acme.test")
    assert {HOST, "orgplane-acme-1234", "localhost", "127.0.0.1"} <= config.allowed_hosts
    assert config.limits == {"max_sessions": 5}
    assert config.heartbeat_interval == 0.1
    assert config.redis_namespace == f"org:{ORG}"
    assert "credential" not in repr(config)


def test_a_bad_environment_names_every_problem(tmp_path: Path) -> None:
    bad = env(
        tmp_path,
        **{
            Env.ORG_ID: "no spaces/here",
            Env.INSTANCE_CREDENTIAL: "short",
            Env.REDIS_NAMESPACE: "org:someone-else",
            Env.LIMITS: "[1]",
        },
    )
    with pytest.raises(ConfigError) as caught:
        InstanceConfig.from_env(bad)
    for name in (Env.ORG_ID, Env.INSTANCE_CREDENTIAL, Env.REDIS_NAMESPACE, Env.LIMITS):
        assert name in str(caught.value)
    assert "short" not in str(caught.value)
    with pytest.raises(ConfigError, match=Env.HEARTBEAT_INTERVAL):
        InstanceConfig.from_env(env(tmp_path, **{Env.HEARTBEAT_INTERVAL: "soon"}))


async def test_a_valid_token_reaches_the_app_with_its_claims(
    client: httpx.AsyncClient, org: OrgInstance, signer: Signer
) -> None:
    for host in (HOST, "ACME.orgs.test:8443", "orgplane-acme-1234:8000", "127.0.0.1:8000"):
        answer = await client.get(
            "/api/x", headers={**bearer(signer.token(ORG, sub="u-1")), "Host": host}
        )
        assert answer.status_code == 200, (host, answer.text)
        assert answer.json()["sub"] == "u-1"
        assert answer.json()["org_id"] == ORG
    assert org.guard is not None
    assert org.guard.requests == 4


@pytest.mark.parametrize(
    ("token", "challenge"),
    [
        (None, "Bearer"),
        ("not-a-token", 'Bearer error="invalid_token"'),
        ("other-org", 'Bearer error="invalid_token"'),
    ],
)
async def test_no_token_or_a_bad_one_is_401_problem(
    client: httpx.AsyncClient, org: OrgInstance, signer: Signer, token: str | None, challenge: str
) -> None:
    other = "org-" + "b" * 28
    value = signer.token(other, aud=org_audience(other)) if token == "other-org" else token
    answer = await client.get("/api/x", headers=bearer(value) if value else {})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"] == challenge
    assert answer.json()["code"] == "invalid_token"
    assert org.guard is not None
    assert org.guard.requests == 0


@pytest.mark.parametrize("host", ["evil.example", "acme.orgs.test.evil.example", ""])
async def test_a_foreign_host_is_421_even_with_a_valid_token(
    client: httpx.AsyncClient, signer: Signer, host: str
) -> None:
    answer = await client.get("/api/x", headers={**bearer(signer.token(ORG)), "Host": host})
    assert answer.status_code == 421
    assert answer.json()["code"] == "misdirected_request"


@pytest.mark.parametrize("path", ["/api/x", "/healthz"])
@pytest.mark.parametrize("host", ["127.0.0.1:abc", ":99999", "a b", "x:65536"])
async def test_a_malformed_host_is_400_probes_included(
    client: httpx.AsyncClient, signer: Signer, host: str, path: str
) -> None:
    answer = await client.get(path, headers={**bearer(signer.token(ORG)), "Host": host})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_host"


async def test_several_host_headers_are_400(org: OrgInstance, signer: Signer) -> None:
    sent: list[Message] = []
    scope = {
        "type": "http",
        "path": "/healthz",
        "headers": [(b"host", HOST.encode()), (b"host", b"evil.example")],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await org.wrap(echo)(scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["code"] == "invalid_host"


async def test_probes_are_served_for_any_host_without_a_token(
    tmp_path: Path, cp: FakeControlPlane
) -> None:
    healthy = [True]

    async def health() -> tuple[bool, bool]:
        return healthy[0], True

    org = OrgInstance.from_env(env(tmp_path), http=cp.client(), health=health)
    transport = httpx.ASGITransport(app=org.wrap(echo))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://10.1.2.3:8000") as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).status_code == 200
        healthy[0] = False
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["code"] == "not_ready"
        assert (await http.get("/healthz")).status_code == 200
    await org.stop()


async def test_the_apps_own_probes_win(tmp_path: Path, cp: FakeControlPlane) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"mine: " + scope["path"].encode()})

    org = OrgInstance.from_env(env(tmp_path), http=cp.client())
    transport = httpx.ASGITransport(app=org.wrap(app))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://10.1.2.3") as http:
        assert (await http.get("/readyz")).text == "mine: /readyz"
    await org.stop()


async def websocket_close(org: OrgInstance, *, host: str, query: bytes = b"") -> Message:
    """What the guard sends to a WebSocket handshake (the app would raise if reached)."""
    scope = {
        "type": "websocket",
        "path": "/api/ws",
        "headers": [(b"host", host.encode())],
        "query_string": query,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await org.wrap(echo)(scope, receive, send)
    assert len(sent) == 1
    return sent[0]


async def test_websockets_are_closed_for_a_foreign_host_or_a_bad_token(
    org: OrgInstance, signer: Signer
) -> None:
    token = signer.token(ORG).encode()
    foreign = await websocket_close(org, host="evil.example", query=b"access_token=" + token)
    assert (foreign["type"], foreign["code"]) == ("websocket.close", 1008)
    bad = await websocket_close(org, host=HOST, query=b"access_token=forged")
    assert (bad["type"], bad["code"]) == ("websocket.close", 4401)
    with pytest.raises(RuntimeError, match="no websocket here"):  # a good token reaches the app
        await websocket_close(org, host=HOST, query=b"access_token=" + token)


async def run_lifespan(app: Any, until_started: Any) -> list[str]:
    """Drive the ASGI lifespan: startup, ``until_started()``, shutdown; the messages sent."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[str] = []

    async def send(message: Message) -> None:
        sent.append(message["type"])

    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "state": {}}, inbox.get, send))
    await eventually(lambda: "lifespan.startup.complete" in sent, what="startup complete")
    await until_started()
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, timeout=10)
    return sent


async def test_heartbeats_run_for_the_apps_lifespan(org: OrgInstance, cp: FakeControlPlane) -> None:
    cp.answer = {"accepted": True, "config_version": 3, "interval": 0.05, "limits": {}}

    async def two_beats() -> None:
        await eventually(lambda: len(cp.heartbeats) >= 2, what="two heartbeats")
        assert org.running

    # The echo app has no lifespan: the wrapper speaks the protocol for it.
    sent = await run_lifespan(org.wrap(echo), two_beats)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert org.limits == {}  # the answer's limits replaced the environment's
    assert cp.heartbeats[0]["contract_version"] == 1
    assert cp.heartbeats[0]["org_id"] == ORG
    assert not org.running  # the loop was cancelled and awaited: no beat after shutdown


async def test_an_app_with_its_own_lifespan_keeps_it(
    org: OrgInstance, cp: FakeControlPlane
) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            events.append(f"{message['type']} (heartbeats running: {org.running})")
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    async def one_beat() -> None:
        await eventually(lambda: cp.heartbeats, what="a heartbeat")

    await run_lifespan(org.wrap(app), one_beat)
    assert events == [
        "lifespan.startup (heartbeats running: True)",
        "lifespan.shutdown (heartbeats running: False)",
    ]
