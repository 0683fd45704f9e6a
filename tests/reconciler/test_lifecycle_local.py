"""The reconciler drives real local instances through their whole lifecycle."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.db.models import Org
from control_plane.settings import Settings
from tests.support.api import assert_problem
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.wait import DEFAULT_TIMEOUT, WaitTimeout, eventually

FAST = {
    **FAST_RECONCILER,
    "ORGPLANE_DELETION_GRACE_SECONDS": "1",
    "ORGPLANE_UNHEALTHY_RESTART_AFTER": "3",
}


@pytest.fixture
def db_backend() -> str:
    """Lifecycle tests run on SQLite; the lease test covers PostgreSQL."""
    return "sqlite"


@pytest.fixture
async def live(make_settings: Any, unused_tcp_port: int) -> Any:
    settings: Settings = make_settings(
        **FAST,
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with serve_control_plane(settings, unused_tcp_port) as app:
        base = f"http://127.0.0.1:{unused_tcp_port}"
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            yield http, app


async def wait_phase(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    slug: str,
    phase: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Wait until the org's instance reports ``phase``; returns the instance's state."""
    body: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        nonlocal body
        body = (await http.get(f"/api/v1/orgs/{slug}/instance", headers=headers)).json()
        return body if body.get("phase") == phase else None

    try:
        return await eventually(
            reached, what=f"{slug} reaching {phase}", timeout=timeout, interval=0.2
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; its state: {body}") from None


async def admin_headers(app: Any, http: httpx.AsyncClient) -> dict[str, str]:
    from control_plane.users.service import create_user

    async with app.state.runtime.sessions() as db:
        await create_user(
            db, email="ops@example.com", password="a long password", is_platform_admin=True
        )
        await db.commit()
    token = (
        await http.post(
            "/api/v1/auth/login", json={"email": "ops@example.com", "password": "a long password"}
        )
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def org_token(http: httpx.AsyncClient, headers: dict[str, str], slug: str) -> str:
    answer = await http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": headers["Authorization"].split()[1],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": f"org:{slug}",
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def test_create_run_suspend_resume_delete(live: Any, tmp_path: Path) -> None:
    http, app = live
    headers = await admin_headers(app, http)
    created = await http.post(
        "/api/v1/orgs", headers=headers, json={"name": "Acme", "slug": "acme"}
    )
    assert created.status_code == 202, created.text
    assert created.json()["phase"] == "pending"
    running = await wait_phase(http, headers, "acme", "running")
    assert running["last_heartbeat_at"]
    assert running["endpoint"].startswith("http://127.0.0.1:")
    kinds = [e["kind"] for e in running["events"]]
    assert "phase.provisioning" in kinds
    assert "phase.running" in kinds

    # The instance serves the org's token and refuses any other Host.
    token = await org_token(http, headers, "acme")
    async with httpx.AsyncClient(base_url=running["endpoint"]) as inst:
        made = await inst.post(
            "/api/v1/sessions",
            json={"title": "canary"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
        refused = await inst.get(
            "/api/v1/sessions",
            headers={"Authorization": f"Bearer {token}", "Host": "other.localhost"},
        )
        assert refused.status_code == 421

    # Suspend stops the instance (data kept); resume brings it back with its data.
    org_id = created.json()["id"]
    assert (await http.post(f"/api/v1/orgs/{org_id}/suspend", headers=headers)).status_code < 300
    await wait_phase(http, headers, "acme", "stopped")
    status = await app.state.runtime.provisioner.status(org_id=org_id)
    assert status is None or status.state in ("stopped", "absent")
    assert (await http.post(f"/api/v1/orgs/{org_id}/resume", headers=headers)).status_code < 300
    back = await wait_phase(http, headers, "acme", "running")
    token = await org_token(http, headers, "acme")
    async with httpx.AsyncClient(base_url=back["endpoint"]) as inst:
        listed = await inst.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        assert [s["title"] for s in listed.json()["items"]] == ["canary"]

    # Delete after the (short) pending-deletion window: instance and data are gone.
    gone = await http.delete(f"/api/v1/orgs/{org_id}", params={"confirm": "acme"}, headers=headers)
    assert gone.status_code == 202, gone.text
    provisioner = app.state.runtime.provisioner

    # The last step of a deletion marks the row deleted, after the instance and the Redis user
    # are gone: wait for that (waiting for the instance alone raced it once under load).
    async def finalised() -> Org | None:
        async with app.state.runtime.sessions() as db:
            org = await db.get(Org, org_id)
            return org if org is not None and org.phase == "deleted" else None

    org = await eventually(finalised, what="the deleted org's row marked deleted", interval=0.3)
    assert org.deleted_at is not None
    assert await provisioner.status(org_id=org_id) is None
    assert await provisioner.list() == []
    assert (await http.get(f"/api/v1/orgs/{org_id}", headers=headers)).status_code == 404


async def test_instance_killed_by_hand_is_brought_back(live: Any) -> None:
    http, app = live
    headers = await admin_headers(app, http)
    created = await http.post(
        "/api/v1/orgs", headers=headers, json={"name": "Drift", "slug": "drift"}
    )
    org_id = created.json()["id"]
    await wait_phase(http, headers, "drift", "running")
    before = await app.state.runtime.provisioner.status(org_id=org_id)
    pid = int(before.handle["pid"])
    import os
    import signal

    os.kill(pid, signal.SIGKILL)

    # Within two reconcile intervals the reconciler sees the dead process and starts a new one.
    async def replaced() -> bool:
        now = await app.state.runtime.provisioner.status(org_id=org_id)
        return now is not None and now.state == "running" and int(now.handle["pid"]) != pid

    await eventually(replaced, what="the killed instance replaced", interval=0.2)
    await wait_phase(http, headers, "drift", "running")


async def test_actions_are_checked_and_cancel_stops_a_pending_org(live: Any) -> None:
    http, app = live
    headers = await admin_headers(app, http)
    created = await http.post("/api/v1/orgs", headers=headers, json={"name": "Act", "slug": "act"})
    org_id = created.json()["id"]
    bad = await http.post(
        f"/api/v1/orgs/{org_id}/instance/actions", headers=headers, json={"action": "explode"}
    )
    assert_problem(bad, 400)
    await wait_phase(http, headers, "act", "running")
    cancel = await http.post(
        f"/api/v1/orgs/{org_id}/instance/actions", headers=headers, json={"action": "cancel"}
    )
    assert_problem(cancel, 409, "nothing_to_cancel")
    stop = await http.post(
        f"/api/v1/orgs/{org_id}/instance/actions", headers=headers, json={"action": "stop"}
    )
    assert stop.status_code == 202
    await wait_phase(http, headers, "act", "stopped")
    start = await http.post(
        f"/api/v1/orgs/{org_id}/instance/actions", headers=headers, json={"action": "start"}
    )
    assert start.status_code == 202
    await wait_phase(http, headers, "act", "running")


async def test_a_suspended_parent_stops_its_children(live: Any) -> None:
    """Failed on the old code: suspending the parent left the child's instance running (it
    never left ``running``) and the child's members kept getting org tokens."""
    http, app = live
    headers = await admin_headers(app, http)
    parent = await http.post("/api/v1/orgs", headers=headers, json={"name": "P", "slug": "par"})
    child = await http.post(
        "/api/v1/orgs",
        headers=headers,
        json={"name": "C", "slug": "kid", "parent_id": parent.json()["id"]},
    )
    assert child.status_code == 202, child.text
    await wait_phase(http, headers, "kid", "running")
    await wait_phase(http, headers, "par", "running")

    suspended = await http.post(f"/api/v1/orgs/{parent.json()['id']}/suspend", headers=headers)
    assert suspended.status_code == 202
    stopped = await wait_phase(http, headers, "kid", "stopped")
    assert stopped["reason"] == "a parent org is suspended"
    status = await app.state.runtime.provisioner.status(org_id=child.json()["id"])
    assert status is None or status.state in ("stopped", "absent")
    refused = await http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": headers["Authorization"].split()[1],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": "org:kid",
        },
    )
    assert refused.json() == {
        "error": "invalid_target",
        "error_description": "The org is suspended: a parent org is suspended.",
    }

    resumed = await http.post(f"/api/v1/orgs/{parent.json()['id']}/resume", headers=headers)
    assert resumed.status_code == 202
    await wait_phase(http, headers, "kid", "running")
    assert await org_token(http, headers, "kid")
