"""Claiming spares at org creation: each spare goes to one org, even under concurrent creates
on PostgreSQL (the database arbitrates with a conditional UPDATE)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import Org, Spare
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.services import need, postgres_available

SPARES = 4
CREATES = 7


@pytest.fixture
def db_backend() -> str:
    return "postgres"


async def add_spares(client: AsyncTestClient[Any], count: int) -> set[str]:
    async with direct_db(client) as db:
        rows = [
            Spare(provisioner="local", state="ready", endpoint="http://127.0.0.1:9")
            for _ in range(count)
        ]
        db.add_all(rows)
        await db.commit()
        return {row.id for row in rows}


async def test_concurrent_creates_claim_distinct_spares(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    need("PostgreSQL", postgres_available())
    spare_ids = await add_spares(client, SPARES)
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/orgs", headers=admin, json={"name": f"C{i}", "slug": f"conc-{i}"})
            for i in range(CREATES)
        )
    )
    assert [a.status_code for a in answers] == [202] * CREATES, [a.text for a in answers]
    org_ids = [a.json()["id"] for a in answers]
    assert len(set(org_ids)) == CREATES
    claimed = [org_id for org_id in org_ids if org_id in spare_ids]
    assert sorted(claimed) == sorted(spare_ids)  # every spare once, the rest got fresh ids
    async with direct_db(client) as db:
        states = {s.id: s.state for s in (await db.exec(select(Spare))).all()}
        assert states == dict.fromkeys(spare_ids, "claimed")
        assert len((await db.exec(select(Org.id))).all()) == CREATES


async def test_a_plan_with_other_resources_starts_cold(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    need("PostgreSQL", postgres_available())
    spare_ids = await add_spares(client, 1)
    big = await client.post(
        "/api/v1/orgs", headers=admin, json={"name": "Big", "slug": "big", "plan": "enterprise"}
    )
    assert big.status_code == 202, big.text
    assert big.json()["id"] not in spare_ids
    small = await client.post("/api/v1/orgs", headers=admin, json={"name": "S", "slug": "small"})
    assert small.json()["id"] in spare_ids


async def test_pool_is_for_platform_admins(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await add_user(client, "user@example.com")
    user = await login(client, "user@example.com")
    assert_problem(await client.get("/api/v1/pool", headers=user), 403, "platform_admin_required")
    await add_spares(client, 2)
    pool = (await client.get("/api/v1/pool", headers=admin)).json()
    assert pool == {
        "provisioner": "local",
        "supported": True,
        "size": 0,
        "ready": 2,
        "warming": 0,
        "claimed": 0,
    }
