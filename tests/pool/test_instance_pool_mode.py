"""Pool mode of an org instance, in process: configuration, the assignment file, and the spare's
ASGI app taking its org (JWKS and heartbeats answered by the instance tests' fake control plane,
which injects faults; everything else is the real app)."""

from __future__ import annotations

import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from org_instance.app import create_app
from org_instance.config import ConfigError, InstanceConfig
from org_instance.pool import (
    PoolConfig,
    environment_for_start,
    in_pool_mode,
    read_assignment,
    write_assignment,
)
from org_instance.pool_app import PoolApp
from orgplane_wire.contract import ASSIGNMENT_FILE, POOL_ASSIGN_PATH, Env
from tests.instance.helpers import ISSUER, JWKS_URL, FakeControlPlane, Signer, bearer
from tests.support.wait import eventually

SECRET = "pool-secret-0123456789abcdef"


def org_env(org_id: str) -> dict[str, str]:
    return {
        Env.ORG_ID: org_id,
        Env.ORG_SLUG: "acme",
        Env.INSTANCE_CREDENTIAL: f"opi_{org_id}.test-credential-0123456789",
        Env.JWKS_URL: JWKS_URL,
        Env.ISSUER: ISSUER,
        Env.CONTROL_PLANE_URL: ISSUER,
        Env.HOSTNAMES: "acme.orgplane.test",
        Env.HEARTBEAT_INTERVAL: "60",
    }


def spare_env(data_dir: Path, org_id: str) -> dict[str, str]:
    return {
        Env.POOL_SECRET: SECRET,
        Env.ORG_ID: org_id,
        Env.DATA_DIR: str(data_dir),
        Env.PORT: "8123",
        Env.BIND_HOST: "127.0.0.1",
    }


def test_pool_mode_needs_a_secret_and_no_credential(tmp_path: Path) -> None:
    env = spare_env(tmp_path, "o1")
    assert in_pool_mode(env)
    assert not in_pool_mode({**env, Env.INSTANCE_CREDENTIAL: "x" * 20})
    assert not in_pool_mode({Env.DATA_DIR: str(tmp_path)})
    config = PoolConfig.from_env(env)
    assert (config.port, config.bind_host, config.org_id) == (8123, "127.0.0.1", "o1")
    assert SECRET not in repr(config)
    with pytest.raises(ConfigError) as bad:
        PoolConfig.from_env({Env.POOL_SECRET: "short", Env.PORT: "http"})
    message = str(bad.value)
    assert Env.POOL_SECRET in message
    assert Env.DATA_DIR in message
    assert Env.PORT in message
    assert "short" not in message


def test_assignment_file_is_private_and_org_env_wins(tmp_path: Path) -> None:
    org_id = uuid.uuid4().hex
    env = spare_env(tmp_path, org_id)
    assert environment_for_start(env) is None  # unassigned: serve as a spare
    write_assignment(tmp_path, {**org_env(org_id), Env.PORT: "1", Env.DATA_DIR: "/elsewhere"})
    path = tmp_path / ASSIGNMENT_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The backend's own variables are never taken from an assignment.
    assert read_assignment(tmp_path) == org_env(org_id)
    started = environment_for_start(env)
    assert started is not None
    config = InstanceConfig.from_env(started)
    assert (config.org_id, config.port, config.data_dir) == (org_id, 8123, tmp_path)
    assert Env.POOL_SECRET not in started
    # The org's own environment wins, and the leftover file (a credential) is deleted.
    own = {**org_env(org_id), Env.DATA_DIR: str(tmp_path)}
    assert environment_for_start(own) == own
    assert not path.exists()


def test_unreadable_assignment_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / ASSIGNMENT_FILE).write_text('{"env": ["not", "an", "object"]}')
    with pytest.raises(ConfigError):
        environment_for_start(spare_env(tmp_path, "o1"))


@pytest.fixture
async def spare(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, PoolApp, Any]]:
    org_id = uuid.uuid4().hex
    signer = Signer()
    cp = FakeControlPlane(signers=[signer])
    env = spare_env(tmp_path / "data", org_id)

    def build(config: InstanceConfig) -> Any:
        return create_app(config, http=cp.client())

    app = PoolApp(config=PoolConfig.from_env(env), env=env, build=build)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client, app, (org_id, signer, cp)
        if app._lifespan is not None:
            await app._lifespan.shutdown()


async def test_spare_serves_health_then_its_org(spare: Any, tmp_path: Path) -> None:
    client, app, (org_id, signer, cp) = spare
    assert (await client.get("/healthz")).json() == {"status": "ok", "pool": "waiting"}
    assert (await client.get("/readyz")).status_code == 200
    waiting = await client.get("/api/v1/sessions")
    assert waiting.status_code == 503
    assert waiting.json()["code"] == "not_assigned"

    body = {"env": org_env(org_id)}
    refused = await client.post(POOL_ASSIGN_PATH, json=body, headers=bearer("wrong" * 6))
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_pool_secret"
    missing = await client.post(POOL_ASSIGN_PATH, json=body)
    assert missing.status_code == 401
    other = await client.post(
        POOL_ASSIGN_PATH, json={"env": org_env(uuid.uuid4().hex)}, headers=bearer(SECRET)
    )
    assert other.status_code == 400
    assert other.json()["code"] == "org_mismatch"
    broken = await client.post(
        POOL_ASSIGN_PATH,
        json={"env": {**org_env(org_id), Env.LIMITS: "[1]"}},
        headers=bearer(SECRET),
    )
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_assignment"
    assert app.org_app is None  # bad input changed nothing
    assert not (tmp_path / "data" / ASSIGNMENT_FILE).exists()

    taken = await client.post(POOL_ASSIGN_PATH, json=body, headers=bearer(SECRET))
    assert taken.status_code == 200, taken.text
    assert taken.json() == {"assigned": True, "org_id": org_id}
    assert (tmp_path / "data" / ASSIGNMENT_FILE).is_file()
    # The org's lifespan ran: the first heartbeat goes out at once.
    await eventually(lambda: cp.heartbeats, what="the org's first heartbeat")
    assert cp.heartbeats[0]["org_id"] == org_id
    again = await client.post(POOL_ASSIGN_PATH, json=body, headers=bearer(SECRET))
    assert again.status_code == 409
    assert again.json()["code"] == "already_assigned"

    headers = {**bearer(signer.token(org_id)), "Host": "acme.orgplane.test"}
    made = await client.post("/api/v1/sessions", json={"title": "pooled"}, headers=headers)
    assert made.status_code == 201, made.text
    foreign = await client.get("/api/v1/sessions", headers={**headers, "Host": "x.example"})
    assert foreign.status_code == 421
