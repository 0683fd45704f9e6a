"""Admission control: at most N instance starts at once, the rest queue in creation order and
are told their position; a slot is held until the instance's first heartbeat."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.app import create_app
from control_plane.capacity.admission import busy_slots
from control_plane.db.models import Instance, Org, utcnow
from tests.reconciler.test_lifecycle_local import admin_headers, wait_phase
from tests.support.api import direct_db
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.orgs import make_org, user
from tests.support.wait import eventually


async def _set(client: Any, slug: str, phase: str, *, heartbeat: bool = False) -> None:
    async with direct_db(client) as db:
        row = (await db.exec(select(Org).where(col(Org.slug) == slug))).one()
        row.phase = phase
        db.add(row)
        started = utcnow()
        db.add(
            Instance(
                org_id=row.id,
                provisioner="local",
                started_at=started,
                last_heartbeat_at=started if heartbeat else None,
            )
        )
        await db.commit()


async def test_the_create_answer_gives_the_queue_position(make_settings: Any) -> None:
    settings = make_settings(ORGPLANE_MAX_CONCURRENT_PROVISIONING="2")
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        admin = await user(client, "ops@example.com", admin=True)
        first = await make_org(client, admin, "first")
        assert first["queue_position"] is None  # a slot is free
        await _set(client, "first", "provisioning")
        second = await make_org(client, admin, "second")
        assert second["queue_position"] is None  # the second slot
        await _set(client, "second", "starting")
        third = await make_org(client, admin, "third")
        fourth = await make_org(client, admin, "fourth")
        assert (third["queue_position"], fourth["queue_position"]) == (1, 2)
        # The answer to a read does not carry it: it is a fact of the create.
        read = await client.get("/api/v1/orgs/third", headers=admin)
        assert read.json()["queue_position"] is None
        # An instance that sent its first heartbeat holds no slot, though still "starting".
        async with direct_db(client) as db:
            assert await busy_slots(db) == 2
        await _set(client, "third", "starting", heartbeat=True)
        async with direct_db(client) as db:
            assert await busy_slots(db) == 2  # first + second; third is ready
        fifth = await make_org(client, admin, "fifth")
        assert fifth["queue_position"] == 2  # behind fourth, still pending


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


async def test_a_burst_never_starts_more_than_the_limit(
    make_settings: Any, unused_tcp_port: int
) -> None:
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_MAX_CONCURRENT_PROVISIONING="1",
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with serve_control_plane(settings, unused_tcp_port) as app:
        base = f"http://127.0.0.1:{unused_tcp_port}"
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            headers = await admin_headers(app, http)
            # Four, not three. A pass writes the queue before it starts the org at its head.
            # With three, the first pass could run before the third was created, and the
            # next after the first org was up: the third was then first written at position
            # 1, and nobody was ever seen at 2 (seen once in a full run on a fast VM, where an
            # instance is up in 0.3 s). With four, the fourth is written at 2 or 3 by then,
            # and reaches 1 only after the second org is up.
            slugs = ["one", "two", "three", "four"]
            answers = await asyncio.gather(
                *(
                    http.post("/api/v1/orgs", headers=headers, json={"name": s, "slug": s})
                    for s in slugs
                )
            )
            assert all(a.status_code == 202 for a in answers)
            positions = sorted(a.json()["queue_position"] or 0 for a in answers)
            assert positions[-1] >= 1  # the burst was told it queues
            most, reasons = 0, set()
            seen: dict[str, set[str]] = {}

            async def all_running() -> bool:
                """Sample the busy slots and the queue; True once every org runs."""
                nonlocal most
                async with app.state.runtime.sessions() as db:
                    most = max(most, await busy_slots(db))
                    orgs = (await db.exec(select(Org))).all()
                reasons.update(o.reason for o in orgs if o.phase == "pending")
                for o in orgs:
                    if o.phase == "pending":
                        seen.setdefault(o.slug, set()).add(o.reason)
                return all(o.phase == "running" for o in orgs)

            await eventually(all_running, what="every org of the burst running", timeout=90)
            for slug in slugs:
                await wait_phase(http, headers, slug, "running", timeout=5)
            assert most == 1
            assert any("waiting for a provisioning slot (position" in r for r in reasons), reasons
            # The last in line moved up the queue, and its timeline says once that it waited.
            moved = {f"waiting for a provisioning slot (position {n})" for n in (1, 2)}
            assert any(moved <= shown for shown in seen.values()), seen
            for slug in slugs:
                state = await http.get(f"/api/v1/orgs/{slug}/instance", headers=headers)
                kinds = [e["kind"] for e in state.json()["events"]]
                assert kinds.count("phase.pending") <= 1, kinds
            for slug in slugs:
                await http.delete(f"/api/v1/orgs/{slug}", headers=headers)
