"""Timestamps are aware UTC, read back from SQLite and PostgreSQL alike (``UTCDateTime``), and
every answer writes them RFC 3339 with an offset.

Seen failing before ``UTCDateTime``: on SQLite ``GET /orgs/{id}/instance`` answered
``"checked_at": "2026-03-01T12:00:00"`` (no offset), and a row read back had ``tzinfo=None``;
a value bound at +02:00 was stored as its wall-clock time on SQLite (two hours off).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from litestar.testing import AsyncTestClient

from control_plane.db.models import Instance, Org
from tests.support.api import direct_db
from tests.support.tokens import make_org

#: RFC 3339 date-time: a full date, a time, and an offset (Z or ±hh:mm).
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
NAIVE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def timestamps(value: Any) -> list[str]:
    """Every string in ``value`` (nested) that looks like a date-time."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in timestamps(v)]
    if isinstance(value, list):
        return [s for v in value for s in timestamps(v)]
    return [value] if isinstance(value, str) and NAIVE_SHAPE.match(value) else []


async def test_rows_read_back_aware_utc_whatever_zone_was_bound(
    client: AsyncTestClient[Any],
) -> None:
    plus_two = AT.astimezone(timezone(timedelta(hours=2)))
    org_id = await make_org(client, "zones", delete_after=plus_two)
    async with direct_db(client) as db:
        db.add(Instance(org_id=org_id, provisioner="test", checked_at=AT.replace(tzinfo=None)))
        await db.commit()
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        instance = await db.get(Instance, org_id)
        assert org is not None
        assert instance is not None
        assert org.delete_after == AT
        assert org.delete_after.tzinfo is UTC
        assert org.created_at.tzinfo is UTC
        assert instance.checked_at == AT  # a naive value is taken as UTC
        assert instance.checked_at.tzinfo is UTC


async def test_instance_and_org_answers_carry_offsets(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    org_id = await make_org(client, "stamps")
    async with direct_db(client) as db:
        db.add(
            Instance(
                org_id=org_id,
                provisioner="test",
                checked_at=AT,
                started_at=AT,
                last_heartbeat_at=AT,
            )
        )
        await db.commit()
    seen: list[str] = []
    for path in (f"/api/v1/orgs/{org_id}/instance", f"/api/v1/orgs/{org_id}", "/api/v1/orgs"):
        answer = await client.get(path, headers=admin)
        assert answer.status_code == 200, answer.text
        seen += timestamps(answer.json())
    assert len(seen) >= 5, seen
    assert [s for s in seen if not RFC3339.match(s)] == []
