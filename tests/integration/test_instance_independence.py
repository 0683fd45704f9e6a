"""An org instance outlives its control plane: with the control plane stopped it keeps serving
valid tokens from its cached JWKS, refuses expired ones, and its heartbeats resume (the row's
``last_heartbeat_at`` advances) once the control plane is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlmodel import select

from control_plane.db.models import SigningKey
from control_plane.signing.jws import sign
from control_plane.signing.keys import KeyRing
from orgplane_wire.contract import org_audience
from orgplane_wire.secret_box import SecretBox
from tests.instance.processes import SECRET, ControlPlane, OrgInstance
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

INTERVAL = "0.5"


async def expired_org_token(cp: ControlPlane, org: dict[str, str], sub: str) -> str:
    """An org token signed with the platform's own key that expired 60 s ago (past the
    verifier's 30 s leeway); the token endpoint never issues one like it."""
    engine, db = cp.session()
    try:
        row = (await db.exec(select(SigningKey))).first()
        assert row is not None
        key = KeyRing(SecretBox(SECRET, purpose="orgplane signing keys v1"), alg=row.alg)
        loaded = key._decrypt(row)
    finally:
        await db.close()
        await engine.dispose()
    claims = {
        "iss": cp.url,
        "sub": sub,
        "aud": org_audience(org["org_id"]),
        "org_id": org["org_id"],
        "org_slug": org["slug"],
        "org_role": "owner",
        "client_id": "orgplane",
        "scope": "org:read org:write org:admin org:owner",
        "plan": "free",
        "features": ["chat", "files"],
    }
    now = int(time.time())
    token, _ = sign({**claims, "iat": now - 400, "nbf": now - 400}, loaded, ttl=-60 - 400)
    return token


def heartbeat_failures(instance: OrgInstance) -> int:
    """How many failed heartbeats the instance has logged so far."""
    log = instance.data_dir / "instance.log"
    return log.read_text(errors="replace").count('"heartbeat failed"') if log.exists() else 0


def test_the_instance_serves_without_the_control_plane_and_heartbeats_resume(
    tmp_path: Path,
) -> None:
    cp = ControlPlane(tmp_path / "cp", extra_env={"ORGPLANE_HEARTBEAT_INTERVAL": INTERVAL})
    cp.data_dir.mkdir()
    cp.start()
    instance: OrgInstance | None = None
    try:
        org = asyncio.run(cp.seed_org("gamma", "owner@gamma.test"))
        instance = OrgInstance(
            org, cp, tmp_path / "gamma", extra_env={"ORGPLANE_HEARTBEAT_INTERVAL": INTERVAL}
        )
        instance.start()
        token = cp.org_token(org["email"], org["slug"])
        with instance.client(token) as c:  # first use: the instance fetches and caches JWKS
            me = c.get("/api/v1/me")
            assert me.status_code == 200, me.text
            sub = me.json()["sub"]
        expired = asyncio.run(expired_org_token(cp, org, sub))

        def heartbeat_at() -> object:
            return asyncio.run(cp.instance_row(org["org_id"])).last_heartbeat_at

        wait_until(lambda: heartbeat_at() is not None, what="a first heartbeat", interval=0.2)
        failed = heartbeat_failures(instance)
        cp.stop()
        before = heartbeat_at()
        # Several heartbeats fail (each one logged) and the instance backs off.
        wait_until(
            lambda: heartbeat_failures(instance) >= failed + 2,
            what="two heartbeats failing with the control plane down",
            interval=0.2,
        )
        with instance.client(token) as c:
            assert c.get("/api/v1/me").status_code == 200
            created = c.post("/api/v1/sessions", json={"title": "written while the CP is down"})
            assert created.status_code == 201
        with instance.client(expired) as c:
            refused = c.get("/api/v1/me")
            assert refused.status_code == 401
            assert refused.json()["code"] == "invalid_token"
        assert heartbeat_at() == before
        cp.start()
        wait_until(lambda: heartbeat_at() != before, what="heartbeats resuming", interval=0.2)
        row = asyncio.run(cp.instance_row(org["org_id"]))
        assert row.health == "ok"
        assert row.last_heartbeat_seq > 1
    finally:
        if instance is not None:
            instance.stop()
        cp.stop()
    log = (tmp_path / "gamma" / "instance.log").read_text()
    assert "heartbeat failed" in log
    assert "heartbeat resumed" in log
    assert org["credential"] not in log
    assert token not in log
