"""The warm pool end to end on the local backend: a real control plane, real instance processes."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from control_plane.db.models import Spare
from orgplane_wire.contract import ASSIGNMENT_FILE, POOL_ASSIGN_PATH
from provisioners.errors import RetryableProvisionerError
from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.wait import WaitTimeout, eventually

POOL_SIZE = 2


@pytest.fixture
def db_backend() -> str:
    """Local end-to-end runs on SQLite; test_pool_claims.py covers PostgreSQL."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any, unused_tcp_port: int) -> Any:
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_DELETION_GRACE_SECONDS="1",
        ORGPLANE_WARM_POOL_SIZE=str(POOL_SIZE),
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with serve_control_plane(settings, unused_tcp_port) as app:
        base = f"http://127.0.0.1:{unused_tcp_port}"
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            yield http, app, await admin_headers(app, http)


async def wait_pool(http: httpx.AsyncClient, headers: dict[str, str], ready: int) -> dict[str, Any]:
    """Wait until the pool has ``ready`` spares ready and none warming; returns its state."""
    body: dict[str, Any] = {}

    async def full() -> dict[str, Any] | None:
        nonlocal body
        body = (await http.get("/api/v1/pool", headers=headers)).json()
        return dict(body) if body["ready"] == ready and body["warming"] == 0 else None

    try:
        return await eventually(full, what=f"the pool with {ready} ready spares", interval=0.2)
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; the pool: {body}") from None


async def spares(app: Any, state: str = "ready") -> dict[str, Spare]:
    async with app.state.runtime.sessions() as db:
        rows = (await db.exec(select(Spare).where(Spare.state == state))).all()
        return {row.id: row for row in rows}


async def create(http: httpx.AsyncClient, headers: dict[str, str], slug: str) -> str:
    made = await http.post("/api/v1/orgs", headers=headers, json={"name": slug, "slug": slug})
    assert made.status_code == 202, made.text
    return str(made.json()["id"])


async def session_titles(endpoint: str, token: str) -> list[str]:
    async with httpx.AsyncClient(base_url=endpoint) as inst:
        listed = await inst.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        return [s["title"] for s in listed.json()["items"]]


async def test_org_claims_a_spare_serves_restarts_and_is_deleted(live: Any) -> None:
    http, app, headers = live
    pool = await wait_pool(http, headers, POOL_SIZE)
    assert pool["size"] == POOL_SIZE
    assert pool["provisioner"] == "local"
    assert pool["supported"]
    before = await spares(app)
    assert len(before) == POOL_SIZE

    org_id = await create(http, headers, "pooled")
    assert org_id in before  # the org took a spare's pre-chosen id
    running = await wait_phase(http, headers, "pooled", "running")
    assert running["endpoint"] == before[org_id].endpoint
    assert "pool.assigned" in [e["kind"] for e in running["events"]]
    provisioner = app.state.runtime.provisioner
    status = await provisioner.status(org_id=org_id)
    data_dir = Path(status.handle["data_dir"])
    assert stat.S_IMODE((data_dir / ASSIGNMENT_FILE).stat().st_mode) == 0o600

    token = await org_token(http, headers, "pooled")
    async with httpx.AsyncClient(base_url=running["endpoint"]) as inst:
        made = await inst.post(
            "/api/v1/sessions", json={"title": "warm"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert made.status_code == 201, made.text

    # The pool refills to its size, with new spares.
    await wait_pool(http, headers, POOL_SIZE)
    assert org_id not in await spares(app)

    # A restart of the claimed spare's process (same pool-mode environment) comes back as the
    # org, from the assignment file: same data, new heartbeats.
    pid = status.handle["pid"]
    await provisioner.restart(org_id=org_id)

    async def restarted() -> Any:
        now = await provisioner.status(org_id=org_id)
        up = now is not None and now.state == "running" and now.handle["pid"] != pid
        return now if up else None

    now = await eventually(restarted, what="the claimed spare restarted", interval=0.2)
    assert now.handle["pid"] != pid
    assert await session_titles(now.endpoint, token) == ["warm"]

    gone = await http.delete(
        f"/api/v1/orgs/{org_id}", params={"confirm": "pooled"}, headers=headers
    )
    assert gone.status_code == 202, gone.text

    async def removed() -> bool:
        # Both: the process goes first and the data directory after it (a run under a CPU hog
        # read the directory in between).
        return await provisioner.status(org_id=org_id) is None and not data_dir.exists()

    await eventually(removed, what="the deleted org's instance and data removed", interval=0.3)
    assert {s.org_id for s in await provisioner.list()} == set(await spares(app))


async def test_bad_pool_secret_is_refused_and_changes_nothing(live: Any) -> None:
    http, app, headers = live
    await wait_pool(http, headers, POOL_SIZE)
    spare = next(iter((await spares(app)).values()))
    async with httpx.AsyncClient(base_url=spare.endpoint) as inst:
        refused = await inst.post(
            POOL_ASSIGN_PATH,
            json={"env": {}},
            headers={"Authorization": "Bearer not-the-secret-at-all"},
        )
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "invalid_pool_secret"
        assert (await inst.get("/healthz")).json()["pool"] == "waiting"
    assert spare.id in await spares(app)


async def test_failed_assignment_falls_back_to_a_cold_start(live: Any) -> None:
    http, app, headers = live
    await wait_pool(http, headers, POOL_SIZE)
    runtime = app.state.runtime
    # Fault: the control plane holds the wrong secret for every spare, so assignments fail.
    async with runtime.sessions() as db:
        for spare in (await db.exec(select(Spare))).all():
            spare.pool_secret_enc = runtime.box.encrypt(b"a-wrong-pool-secret-0123456789")
            db.add(spare)
        await db.commit()
    org_id = await create(http, headers, "coldfall")
    running = await wait_phase(http, headers, "coldfall", "running")
    kinds = [e["kind"] for e in running["events"]]
    assert "pool.assign_failed" in kinds
    assert "instance.applied" in kinds
    status = await runtime.provisioner.status(org_id=org_id)
    assert status.state == "running"
    assert not (Path(status.handle["data_dir"]) / ASSIGNMENT_FILE).exists()
    token = await org_token(http, headers, "coldfall")
    assert await session_titles(running["endpoint"], token) == []


async def test_a_failed_adoption_is_retried_as_a_cold_apply(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spare took the org, then the backend failed to adopt it (its routes, on Kubernetes):
    the org is marked failed, and the retry applies the org's own spec, which replaces the
    spare's process with one started from the org's environment."""
    http, app, headers = live
    await wait_pool(http, headers, POOL_SIZE)
    provisioner = app.state.runtime.provisioner
    failures: list[str] = []

    async def adopt_fails_once(*, spec: Any) -> None:  # fault: the backend refuses once
        if not failures:
            failures.append(spec.org_id)
            raise RetryableProvisionerError("the backend is busy (injected)")

    monkeypatch.setattr(provisioner, "adopt", adopt_fails_once)
    org_id = await create(http, headers, "adoptfail")
    claimed_pid = (await provisioner.status(org_id=org_id)).handle["pid"]
    running = await wait_phase(http, headers, "adoptfail", "running")

    assert failures == [org_id]
    kinds = [e["kind"] for e in running["events"]]
    assert "pool.assigned" in kinds
    assert kinds.count("instance.applied") == 1  # only the cold retry got this far
    status = await provisioner.status(org_id=org_id)
    assert status.handle["pid"] != claimed_pid  # the org's own process now
    assert not (Path(status.handle["data_dir"]) / ASSIGNMENT_FILE).exists()
    assert org_id not in await spares(app)
