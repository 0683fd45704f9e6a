"""The usage API: an org's time series (JSON and CSV) and the platform admins' top orgs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient

from control_plane.db.models import UsageSample
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.tokens import make_org

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def _samples(client: AsyncTestClient[Any], org_id: str, rows: list[dict[str, int]]) -> None:
    """Hourly samples from T0, one per row."""
    async with direct_db(client) as db:
        for hour, row in enumerate(rows):
            db.add(UsageSample(org_id=org_id, bucket=T0 + timedelta(hours=hour), **row))
        await db.commit()


def _window(hours: int, **params: Any) -> dict[str, Any]:
    end = T0 + timedelta(hours=hours)
    return {"start": T0.isoformat(), "end": end.isoformat(), **params}


async def test_series_sums_counters_and_peaks_gauges_per_step_as_json_and_csv(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    owner_id = await add_user(client, "owner@example.com")
    acme = await make_org(client, "acme", members={owner_id: "admin"})
    owner = await login(client, "owner@example.com")
    await _samples(
        client,
        acme,
        [
            {"requests": 5, "active_users": 2, "storage_bytes": 100},
            {"requests": 7, "active_users": 3, "storage_bytes": 90},
            {"requests": 1, "active_users": 1, "storage_bytes": 300},
        ],
    )
    params = _window(4, step=7200, metrics="requests,active_users,storage_bytes")
    answer = await client.get("/api/v1/orgs/acme/usage", headers=owner, params=params)
    assert answer.status_code == 200, answer.text
    points = answer.json()["points"]
    assert [p["requests"] for p in points] == [12, 1]
    assert [p["active_users"] for p in points] == [3, 1]
    assert [p["storage_bytes"] for p in points] == [100, 300]
    assert points[1]["t"].startswith("2026-03-01T02:00:00")
    assert "sessions" not in points[0]

    csv = await client.get(
        "/api/v1/orgs/acme/usage",
        headers={**owner, "Accept": "text/csv"},
        params=_window(3, metrics="requests"),
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == [
        "time,requests",
        "2026-03-01T00:00:00+00:00,5",
        "2026-03-01T01:00:00+00:00,7",
        "2026-03-01T02:00:00+00:00,1",
    ]
    by_param = await client.get(
        "/api/v1/orgs/acme/usage", headers=owner, params=_window(1, format="csv")
    )
    assert by_param.text.startswith("time,requests,sessions,messages,active_users,storage_bytes\n")
    # Platform admins read any org's usage.
    staff = await client.get("/api/v1/orgs/acme/usage", headers=admin, params=_window(1))
    assert staff.json()["points"][0]["requests"] == 5


async def test_only_org_admins_see_usage_and_bad_queries_are_refused(
    client: AsyncTestClient[Any],
) -> None:
    member_id = await add_user(client, "member@example.com")
    admin_id = await add_user(client, "boss@example.com")
    await add_user(client, "stranger@example.com")
    await make_org(client, "acme", members={member_id: "member", admin_id: "owner"})
    for email in ("member@example.com", "stranger@example.com"):
        headers = await login(client, email)
        answer = await client.get("/api/v1/orgs/acme/usage", headers=headers)
        assert_problem(answer, 404, "org_not_found")
    boss = await login(client, "boss@example.com")
    bad = [
        (_window(2, step=1800), "invalid_step"),
        (_window(2, step=5400), "invalid_step"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "invalid_range"),
        ({"start": T0.isoformat(), "end": T0.isoformat()}, "invalid_range"),
        (_window(2, metrics="requests,bogus"), "unknown_metric"),
    ]
    for params, code in bad:
        answer = await client.get("/api/v1/orgs/acme/usage", headers=boss, params=params)
        assert_problem(answer, 400, code)
    top = await client.get("/api/v1/usage/top", headers=boss)
    assert_problem(top, 403, "platform_admin_required")


async def test_top_orgs_rank_by_any_metric_and_filter_by_plan(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    small = await make_org(client, "small")
    big = await make_org(client, "big", plan="team")
    huge = await make_org(client, "huge", plan="team")
    await _samples(client, small, [{"requests": 10, "storage_bytes": 900}])
    await _samples(client, big, [{"requests": 20, "storage_bytes": 5}, {"requests": 20}])
    await _samples(client, huge, [{"requests": 30, "storage_bytes": 50}])

    async def top(**params: Any) -> list[tuple[str, int]]:
        answer = await client.get("/api/v1/usage/top", headers=admin, params=_window(5, **params))
        assert answer.status_code == 200, answer.text
        return [(item["slug"], item["value"]) for item in answer.json()["items"]]

    assert await top(metric="requests") == [("big", 40), ("huge", 30), ("small", 10)]
    assert await top(metric="storage_bytes", limit=2) == [("small", 900), ("huge", 50)]
    assert await top(metric="requests", plan="team", limit=1) == [("big", 40)]
    bad_plan = await client.get("/api/v1/usage/top", headers=admin, params={"plan": "gold"})
    assert_problem(bad_plan, 400, "unknown_plan")
    bad_metric = await client.get("/api/v1/usage/top", headers=admin, params={"metric": "x"})
    assert_problem(bad_metric, 400, "unknown_metric")
