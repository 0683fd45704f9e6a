"""An org instance logs every request as one JSON line (method, route template, status,
duration, user id, org id, request id), and the control plane forwards the id of the request it
serves to the instance it calls: the backup asked with ``X-Request-ID`` is logged by the
instance under that id, and the backup counts in the control plane's metrics. Real local
instances (their output is ``instance.log``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.backups.live import Live, instance_client, new_org
from tests.support.wait import eventually


def request_lines(log: Path) -> list[dict[str, Any]]:
    """The instance's ``request`` lines so far (every line must be JSON)."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == "request"]


METRICS_TOKEN = "backup-metrics-token"


async def test_instances_log_requests_under_the_forwarded_request_id(
    start_live: Callable[..., AbstractAsyncContextManager[Live]],
) -> None:
    async with start_live(ORGPLANE_METRICS_TOKEN=METRICS_TOKEN) as live:
        await check_request_ids(live)


async def check_request_ids(live: Live) -> None:
    org_id = await new_org(live, "delta")
    log = live.app.state.runtime.provisioner.root / org_id / "instance.log"
    traced = f"trace-{uuid.uuid4().hex}"
    made = await live.http.post(
        "/api/v1/orgs/delta/backups", headers={**live.admin, "X-Request-ID": traced}
    )
    assert made.status_code == 201, made.text
    assert made.headers["x-request-id"] == traced

    direct = f"direct-{uuid.uuid4().hex}"
    async with await instance_client(live, "delta") as inst:
        listed = await inst.get("/api/v1/sessions", headers={"X-Request-ID": direct})
        assert listed.headers["x-request-id"] == direct
        token = inst.headers["Authorization"].removeprefix("Bearer ")
        # A malformed id is replaced, not logged as sent.
        odd = await inst.get("/api/v1/sessions/nope", headers={"X-Request-ID": "a b;c" * 30})
        assert odd.status_code == 404
        assert odd.headers["x-request-id"] != "a b;c" * 30
        replaced = odd.headers["x-request-id"]
    me = (await live.http.get("/api/v1/me", headers=live.admin)).json()["id"]
    scraped = await live.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    backups = {
        (s.labels["kind"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
        if s.name == "orgplane_backups_total"
    }
    assert backups == {("manual", "ok"): 1}

    def logged() -> dict[str, dict[str, Any]]:
        found = {line["request_id"]: line for line in request_lines(log)}
        return found if {traced, direct, replaced} <= set(found) else {}

    lines = await eventually(logged, what="the instance's request lines")
    backup = lines[traced]
    assert backup["method"] == "POST"
    assert backup["route"] == "/internal/backup"
    assert backup["status"] == 200
    assert backup["org_id"] == org_id
    assert isinstance(backup["duration_ms"], float | int)
    sessions = lines[direct]
    assert (sessions["method"], sessions["route"], sessions["status"]) == (
        "GET",
        "/api/v1/sessions",
        200,
    )
    assert sessions["user_id"] == me
    assert sessions["org_id"] == org_id
    assert lines[replaced]["route"] == "/api/v1/sessions/{session_id}"
    assert lines[replaced]["status"] == 404
    text = log.read_text()
    assert token not in text
    assert "/api/v1/sessions/nope" not in text, "a raw path in the log"
