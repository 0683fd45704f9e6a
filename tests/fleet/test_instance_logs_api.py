"""``GET /api/v1/orgs/{org}/instance/logs``: a real control plane served over HTTP and a real
local instance process.

Proves: an org admin and a platform admin read the last lines (text/plain, the instance's JSON
lines), and each read is audited before a line is sent (a staff read says so); a member (403
``admin_required``), another org's admin (404, as if the org did not exist) and a platform admin
without an approved request in a gated org (403 ``approval_required``) get nothing, and their
refusals are audited as denied; bad ``tail``/``since`` answer 400 problem+json and change
nothing; ``follow`` delivers a line logged after the stream opened, and the stream ends by itself
after ``ORGPLANE_INSTANCE_LOGS_MAX_SECONDS``. The control plane forwards the request id of the
read to the instance (its readiness probe is logged by the instance under that id). The org
page's panel shows the last lines to an admin, and is audited the same way.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, Membership, Org
from control_plane.users.service import create_user
from tests.provisioners.harness import make_spec, wait_for_state
from tests.support.api import assert_problem
from tests.support.live import serve_control_plane
from tests.support.wait import eventually
from tests.ui.forms import ui_login

pytestmark = pytest.mark.slow
PASSWORD = "a long password for tests"
MAX_SECONDS = 6


@pytest.fixture
def db_backend() -> str:
    """SQLite: what is proved here does not depend on the database."""
    return "sqlite"


async def _login(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    answer = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
async def world(
    make_settings: Any, unused_tcp_port: int, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_INSTANCE_LOGS_MAX_TAIL="50",
        ORGPLANE_INSTANCE_LOGS_MAX_SECONDS=str(MAX_SECONDS),
    )
    async with serve_control_plane(settings, unused_tcp_port) as app:
        runtime = app.state.runtime
        users = {}
        async with runtime.sessions() as db:
            for name in ("ops", "staff", "admin", "member", "stranger"):
                user = await create_user(
                    db,
                    email=f"{name}@example.com",
                    password=PASSWORD,
                    is_platform_admin=name in ("ops", "staff"),
                )
                users[name] = user.id
            acme = Org(slug="acme", name="Acme", phase="running")
            gated = Org(slug="vault", name="Vault", phase="running", require_access_approval=True)
            other = Org(slug="other", name="Other", phase="running")
            db.add_all([acme, gated, other])
            await db.flush()
            db.add_all(
                [
                    Membership(user_id=users["admin"], org_id=acme.id, role="admin"),
                    Membership(user_id=users["member"], org_id=acme.id, role="member"),
                    Membership(user_id=users["stranger"], org_id=other.id, role="admin"),
                ]
            )
            await db.commit()
            org_ids = {"acme": acme.id, "vault": gated.id}
        provisioner = runtime.provisioner
        deployment = settings.provisioning.deployment_id
        endpoints = {}
        for slug, org_id in org_ids.items():
            await provisioner.apply(spec=make_spec(run_id=deployment, org_id=org_id, slug=slug))
            status = await wait_for_state(provisioner, org_id, {"running"})
            endpoints[slug] = status.endpoint
        base = f"http://127.0.0.1:{unused_tcp_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            headers = {name: await _login(http, f"{name}@example.com") for name in users}
            yield {
                "http": http,
                "app": app,
                "users": users,
                "headers": headers,
                "orgs": org_ids,
                "endpoints": endpoints,
                "log": provisioner.root / org_ids["acme"] / "instance.log",
            }


async def _audit(app: Any, action: str) -> list[AuditEvent]:
    async with app.state.runtime.sessions() as db:
        query = select(AuditEvent).where(col(AuditEvent.action) == action)
        return list((await db.exec(query.order_by(col(AuditEvent.at)))).all())


async def test_reads_refusals_audit_and_request_id(world: dict[str, Any]) -> None:
    http, headers, app = world["http"], world["headers"], world["app"]
    url = "/api/v1/orgs/acme/instance/logs"
    traced = f"logs-{uuid.uuid4().hex}"

    answer = await http.get(
        url, params={"tail": 3}, headers={**headers["admin"], "X-Request-ID": traced}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    lines = answer.text.splitlines()
    assert 1 <= len(lines) <= 3
    assert all(json.loads(line)["org_id"] == world["orgs"]["acme"] for line in lines)

    # The request id of the read reached the instance: its readiness probe is logged under it.
    def probed() -> bool:
        logged = [json.loads(line) for line in world["log"].read_text().splitlines()]
        return any(line.get("request_id") == traced for line in logged)

    await eventually(probed, what="the instance's line with the forwarded request id")

    staff_read = await http.get(url, headers=headers["ops"])
    assert staff_read.status_code == 200

    assert_problem(await http.get(url, headers=headers["member"]), 403, "admin_required")
    assert_problem(await http.get(url, headers=headers["stranger"]), 404, "org_not_found")
    gated = "/api/v1/orgs/vault/instance/logs"
    assert_problem(await http.get(gated, headers=headers["staff"]), 403, "approval_required")

    events = await _audit(app, "instance.logs.read")
    outcomes = [(e.actor_id, e.org_id, e.outcome) for e in events]
    users, orgs = world["users"], world["orgs"]
    assert outcomes == [
        (users["admin"], orgs["acme"], "success"),
        (users["ops"], orgs["acme"], "success"),
        (users["member"], orgs["acme"], "denied"),
        (users["staff"], orgs["vault"], "denied"),
    ]
    assert events[0].detail["tail"] == 3
    assert events[0].detail["follow"] is False
    assert "staff" in events[1].detail
    assert events[3].detail["code"] == "approval_required"

    # Bad input: problem+json, nothing recorded.
    for params, code in [
        ({"tail": 51}, "invalid_tail"),
        ({"tail": -1}, "invalid_tail"),
        ({"since": "yesterday"}, "invalid_since"),
    ]:
        assert_problem(await http.get(url, params=params, headers=headers["admin"]), 400, code)
    assert_problem(await http.get(url, params={"tail": "x"}, headers=headers["admin"]), 400)
    assert len(await _audit(app, "instance.logs.read")) == len(events)

    # The org page's panel: the last lines, for an admin; a member's page has none.
    pages = {}
    for name in ("admin", "member"):
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as browser:
            await ui_login(browser, f"{name}@example.com", PASSWORD)
            pages[name] = await browser.get("/ui/orgs/acme")
            assert pages[name].status_code == 200, pages[name].text
    assert 'id="instance-log"' in pages["admin"].text
    assert world["orgs"]["acme"] in pages["admin"].text.split('id="instance-log"')[1]
    assert 'id="instance-log"' not in pages["member"].text
    assert len(await _audit(app, "instance.logs.read")) == len(events) + 1


async def test_follow_streams_new_lines_and_ends_by_itself(world: dict[str, Any]) -> None:
    http, headers = world["http"], world["headers"]
    marker = f"follow-{uuid.uuid4().hex}"
    received: list[str] = []
    opened = asyncio.Event()

    async def follow() -> None:
        params = {"tail": 0, "follow": "true"}
        url = "/api/v1/orgs/acme/instance/logs"
        async with http.stream("GET", url, params=params, headers=headers["admin"]) as answer:
            assert answer.status_code == 200
            opened.set()
            async for line in answer.aiter_lines():
                received.append(line)

    reader = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(opened.wait(), timeout=30)
        async with httpx.AsyncClient(trust_env=False, timeout=10) as inst:
            # Repeated until one arrives: the stream attaches once the server first iterates.
            async def arrived() -> bool:
                ready = f"{world['endpoints']['acme']}/readyz"
                await inst.get(ready, headers={"X-Request-ID": marker})
                return any(marker in line for line in received)

            await eventually(arrived, what="the new line streamed", interval=0.3)
        # Nobody closes it: the stream ends after ORGPLANE_INSTANCE_LOGS_MAX_SECONDS.
        await asyncio.wait_for(reader, timeout=MAX_SECONDS + 30)
    finally:
        reader.cancel()
    assert json.loads(next(line for line in received if marker in line))["request_id"] == marker
