"""Concurrent creation of one slug: exactly one request wins, every other one gets 409.

The ``client`` fixture serialises requests through a blocking portal, so this test runs the
app in the test's own event loop behind ``httpx.ASGITransport``: the requests really overlap
and race on the database (PostgreSQL's unique index, SQLite's write lock).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select
from structlog.testing import capture_logs

from control_plane.app import create_app
from control_plane.db.models import Membership, Org
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from control_plane.users.service import create_user
from tests.support.api import PASSWORD

RACERS = 20


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """INFO logs, so the test can see which losers the unique index stopped."""
    result: Settings = make_settings(ORGPLANE_LOG_LEVEL="INFO")
    return result


async def test_only_one_of_twenty_concurrent_creates_of_a_slug_wins(settings: Settings) -> None:
    app = create_app(settings)
    async with app.lifespan():
        runtime: Runtime = app.state.runtime
        async with runtime.sessions() as db:
            await create_user(db, email="alice@example.com", password=PASSWORD)
            await db.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            token = (
                await http.post(
                    "/api/v1/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            # Warm the key cache so the racers start level instead of queueing behind it.
            assert (await http.get("/api/v1/me", headers=headers)).status_code == 200

            async def create(i: int) -> httpx.Response:
                return await http.post(
                    "/api/v1/orgs", headers=headers, json={"name": f"Racer {i}", "slug": "Race-Co"}
                )

            with capture_logs() as logs:
                answers = await asyncio.wait_for(
                    asyncio.gather(*(create(i) for i in range(RACERS))), timeout=120
                )
        # Some losers passed the pre-check and were stopped by the unique index itself.
        assert any(entry["event"] == "slug race lost" for entry in logs)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202] + [409] * (RACERS - 1), [a.text for a in answers]
        losers = [a.json() for a in answers if a.status_code == 409]
        assert {(p["code"], p["field"]) for p in losers} == {("slug_taken", "slug")}
        assert all(
            a.headers["content-type"].startswith("application/problem+json")
            for a in answers
            if a.status_code == 409
        )
        async with runtime.sessions() as db:
            assert (await db.exec(select(func.count()).select_from(Org))).one() == 1
            assert (await db.exec(select(func.count()).select_from(Membership))).one() == 1
