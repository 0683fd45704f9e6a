"""Where webhook events come from: each is written in the transaction of the change it reports.

Proves: suspending an org writes ``org.suspended``; a refused hostname claim (409
``hostname_taken``) writes ``hostname.conflict`` and nothing else; a backup whose instance does
not answer writes ``backup.failed``; a reconciler phase change into ``unhealthy``, ``failed`` or
``deleted`` writes ``instance.unhealthy``, ``instance.failed`` or ``org.deleted`` once (staying
in the phase writes no second one); events carry the ``{type, timestamp, data}`` body that is
signed and sent. The platform dashboard lists what needs attention first, and old finished
deliveries are pruned.
"""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import (
    Backup,
    Domain,
    Instance,
    Org,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from control_plane.orgs.events import set_phase
from control_plane.webhooks.worker import KEEP_DAYS, WebhookWorker
from tests.support.api import add_user, direct_db
from tests.support.tokens import make_org
from tests.ui.forms import ui_login


async def _events(client: AsyncTestClient[Any], event_type: str) -> list[dict[str, Any]]:
    async with direct_db(client) as db:
        query = select(WebhookEvent).where(col(WebhookEvent.type) == event_type)
        return [json.loads(e.body) for e in (await db.exec(query)).all()]


async def test_api_changes_write_their_events(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    acme = await make_org(client, "acme", phase="running", plan="team")
    await make_org(client, "rival", phase="running", plan="team")

    assert (await client.post("/api/v1/orgs/acme/suspend", headers=admin)).status_code == 202
    (suspended,) = await _events(client, "org.suspended")
    assert suspended["type"] == "org.suspended"
    assert suspended["data"]["org_id"] == acme
    assert suspended["timestamp"]

    host = {"hostname": "shop.example.org"}
    added = await client.post("/api/v1/orgs/acme/domains", headers=admin, json=host)
    assert added.status_code == 201, added.text
    async with direct_db(client) as db:  # proved by DNS: only then does it bar other orgs
        domain = await db.get(Domain, added.json()["id"])
        assert domain is not None
        domain.verified = True
        db.add(domain)
        await db.commit()
    taken = await client.post("/api/v1/orgs/rival/domains", headers=admin, json=host)
    assert taken.status_code == 409
    (conflict,) = await _events(client, "hostname.conflict")
    assert conflict["data"]["hostname"] == "shop.example.org"
    assert conflict["data"]["slug"] == "rival"
    async with direct_db(client) as db:
        owners = (await db.exec(select(Domain.org_id).where(col(Domain.kind) == "custom"))).all()
    assert owners == [acme]

    async with direct_db(client) as db:
        db.add(Instance(org_id=acme, provisioner="local", endpoint="http://127.0.0.1:9"))
        org = await db.get(Org, acme)
        assert org is not None
        org.suspended, org.desired_state = False, "running"
        db.add(org)
        await db.commit()
    failed = await client.post("/api/v1/orgs/acme/backups", headers=admin)
    assert failed.status_code >= 400
    (backup,) = await _events(client, "backup.failed")
    assert backup["data"]["org_id"] == acme
    assert backup["data"]["error"]


async def test_phase_changes_write_their_events(client: AsyncTestClient[Any]) -> None:
    org_id = await make_org(client, "acme", phase="running")
    for phase, reason in [
        ("unhealthy", "no heartbeat for 40s"),
        ("unhealthy", "no heartbeat for 50s"),
        ("failed", "image missing (retry 1 in 2s)"),
        ("failed", "image missing (retry 2 in 4s)"),
        ("deleted", ""),
    ]:
        async with direct_db(client) as db:
            org = await db.get(Org, org_id)
            assert org is not None
            set_phase(db, org, phase, reason)
            await db.commit()
    unhealthy = await _events(client, "instance.unhealthy")
    failed = await _events(client, "instance.failed")
    deleted = await _events(client, "org.deleted")
    assert [e["data"]["reason"] for e in unhealthy] == ["no heartbeat for 40s"]
    assert [e["data"]["reason"] for e in failed] == ["image missing (retry 1 in 2s)"]
    assert [e["data"]["org_id"] for e in deleted] == [org_id]


async def test_dashboard_lists_what_needs_attention_first(client: AsyncTestClient[Any]) -> None:
    """Unhealthy and failed orgs, failed webhook deliveries and failed backups head the
    platform dashboard, above the org table; healthy orgs and old failures are not listed."""
    await add_user(client, "root@example.com", admin=True)
    await ui_login(client, "root@example.com")
    sick = await make_org(client, "sick", phase="unhealthy", reason="no heartbeat for 90s")
    await make_org(client, "broken", phase="failed", reason="image missing")
    await make_org(client, "fine", phase="running")
    async with direct_db(client) as db:
        endpoint = WebhookEndpoint(url="https://hooks.example.com/x", secret_enc="x")
        event = WebhookEvent(type="org.created", body="{}")
        db.add_all([endpoint, event])
        await db.flush()
        db.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_type="org.created",
                status="failed",
                attempts=8,
                last_status_code=503,
                completed_at=utcnow(),
            )
        )
        db.add(Backup(org_id=sick, kind="scheduled", status="failed", error="disk full"))
        old = utcnow() - timedelta(days=30)
        db.add(Backup(org_id=sick, kind="manual", status="failed", error="ancient", created_at=old))
        await db.commit()

    page = (await client.get("/ui/")).text
    attention = page.split('id="attention"')[1].split("</section>")[0]
    assert page.index('id="attention"') < page.index("<table>")
    assert "/ui/orgs/sick" in attention
    assert "no heartbeat for 90s" in attention
    assert "/ui/orgs/broken" in attention
    assert "image missing" in attention
    assert "/ui/orgs/fine" not in attention
    assert "disk full" in attention
    assert "ancient" not in attention
    assert "hooks.example.com/x" in attention
    assert "HTTP 503" in attention

    async with direct_db(client) as db:
        for row in (await db.exec(select(Org))).all():
            row.phase = "running"
            db.add(row)
        for backup in (await db.exec(select(Backup))).all():
            await db.delete(backup)
        for delivery in (await db.exec(select(WebhookDelivery))).all():
            await db.delete(delivery)
        await db.commit()
    assert "Nothing needs attention" in (await client.get("/ui/")).text


async def test_old_finished_deliveries_and_their_events_are_pruned(
    client: AsyncTestClient[Any],
) -> None:
    """Finished deliveries older than KEEP_DAYS go, then dispatched events nothing refers to;
    pending deliveries (however old) and recent ones stay, with their events."""
    old = utcnow() - timedelta(days=KEEP_DAYS + 1)
    async with direct_db(client) as db:
        endpoint = WebhookEndpoint(url="https://hooks.example.com/x", secret_enc="x")
        events = {
            name: WebhookEvent(type="org.created", body="{}", created_at=old, dispatched_at=old)
            for name in ("done", "pending", "recent", "orphan")
        }
        db.add_all([endpoint, *events.values()])
        await db.flush()
        for name, status, completed in [
            ("done", "succeeded", old),
            ("pending", "pending", None),
            ("recent", "failed", utcnow()),
        ]:
            db.add(
                WebhookDelivery(
                    endpoint_id=endpoint.id,
                    event_id=events[name].id,
                    event_type="org.created",
                    status=status,
                    completed_at=completed,
                    created_at=old,
                    # Not due: the app's own worker must leave the pending one alone.
                    next_attempt_at=utcnow() + timedelta(days=1),
                )
            )
        await db.commit()
        ids = {name: event.id for name, event in events.items()}
        engine = db.bind
        runtime = SimpleNamespace(
            replica_id="prune-test",
            sessions=async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        )
        await WebhookWorker(runtime).prune()  # type: ignore[arg-type]
        left = {e.id for e in (await db.exec(select(WebhookEvent))).all()}
        statuses = sorted(d.status for d in (await db.exec(select(WebhookDelivery))).all())
    assert left == {ids["pending"], ids["recent"]}
    assert statuses == ["failed", "pending"]
