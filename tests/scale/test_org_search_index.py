"""Org search by fragment at many orgs: PostgreSQL answers it from the trigram indexes of
migration 0011 instead of reading every org (plans and answers, never timings)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from control_plane.db.models import Org
from tests.support.api import add_user, direct_db, login

ORGS = 20_000
#: The org search's condition and order (control_plane/orgs/listing.py), as SQL.
SEARCH = (
    "SELECT id FROM org WHERE desired_state != 'deleted' AND deleted_at IS NULL AND "
    "(lower(name) LIKE :needle OR slug LIKE :needle) ORDER BY slug, id LIMIT 51"
)


@pytest.fixture
def db_backend() -> str:
    return "postgres"


async def _many_orgs(client: AsyncTestClient[Any]) -> None:
    """``ORGS`` live orgs ``team-00001``..., copied in SQL from one made by the ORM."""
    async with direct_db(client) as db:
        first = Org(slug="team-00000", name="Team 00000", phase="running")
        db.add(first)
        await db.commit()
        columns = (
            await db.exec(  # type: ignore[call-overload]
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'org' ORDER BY ordinal_position"
                )
            )
        ).scalars()
        made = {
            "id": "md5(g::text)",
            "slug": "'team-' || lpad(g::text, 5, '0')",
            "name": "'Team ' || lpad(g::text, 5, '0')",
        }
        names = list(columns)
        picked = ", ".join(made.get(c, f'org."{c}"') for c in names)
        quoted = ", ".join(f'"{c}"' for c in names)
        await db.exec(  # type: ignore[call-overload]
            text(
                f"INSERT INTO org ({quoted}) SELECT {picked} FROM org, "
                f"generate_series(1, {ORGS - 1}) AS g WHERE org.id = :first"
            ).bindparams(first=first.id)
        )
        await db.commit()
        await db.exec(text("ANALYZE org"))  # type: ignore[call-overload]


async def test_a_rare_fragment_is_found_through_the_trigram_indexes(
    client: AsyncTestClient[Any],
) -> None:
    await _many_orgs(client)
    async with direct_db(client) as db:
        plan = "\n".join(
            (
                await db.exec(  # type: ignore[call-overload]
                    text(f"EXPLAIN {SEARCH}").bindparams(needle="%12345%")
                )
            ).scalars()
        )
    assert "ix_org_slug_trgm" in plan, plan
    assert "ix_org_name_trgm" in plan, plan

    await add_user(client, "root@example.com", admin=True)
    headers = await login(client, "root@example.com")
    found = await client.get("/api/v1/orgs", params={"q": "12345"}, headers=headers)
    assert found.status_code == 200, found.text
    assert [o["slug"] for o in found.json()["items"]] == ["team-12345"]
    looked = await client.get("/api/v1/orgs/lookup", params={"q": "team 1234"}, headers=headers)
    assert [item["label"] for item in looked.json()] == [
        f"Team {n} (team-{n})"
        for n in [
            "12340",
            "12341",
            "12342",
            "12343",
            "12344",
            "12345",
            "12346",
            "12347",
            "12348",
            "12349",
        ]
    ]
