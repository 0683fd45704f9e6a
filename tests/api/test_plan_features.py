"""Plan features that gate something: ``custom_domains`` (the domain API) and ``audit_export``
(the streamed audit export), refused on a plan without them and working on a plan with them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit.export import BATCH, COLUMNS, ENCODERS, encoded_batches
from control_plane.db.models import AuditEvent, Domain, Org
from control_plane.routing.domains import routed_hostnames
from tests.support.api import assert_problem, direct_db, runtime_of
from tests.support.orgs import add_member, make_org, user

HOST = {"hostname": "shop.example.com"}


async def _org(client: AsyncTestClient[Any], admin: dict[str, str], slug: str, plan: str) -> str:
    """An org on ``plan`` owned by ``owner@{slug}.test``; returns its id."""
    made = await make_org(client, admin, slug, plan=plan, owner_email=f"owner@{slug}.test")
    return str(made["id"])


async def _events(client: AsyncTestClient[Any], org_id: str, action: str) -> list[AuditEvent]:
    async with direct_db(client) as db:
        query = select(AuditEvent).where(
            col(AuditEvent.org_id) == org_id, col(AuditEvent.action) == action
        )
        return list((await db.exec(query.order_by(col(AuditEvent.id)))).all())


async def _custom_domains(client: AsyncTestClient[Any], org_id: str) -> list[str]:
    async with direct_db(client) as db:
        query = select(Domain.hostname).where(
            col(Domain.org_id) == org_id, col(Domain.kind) == "custom"
        )
        return list((await db.exec(query)).all())


# --- custom_domains ---------------------------------------------------------------------------


async def test_custom_domains_refused_on_free_and_added_on_team(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    """Failed on the old code: a free-plan org added a custom domain (201)."""
    free_owner = await user(client, "owner@free.test")
    team_owner = await user(client, "owner@team.test")
    free_id = await _org(client, admin, "free", "free")
    team_id = await _org(client, admin, "team", "team")

    refused = await client.post(f"/api/v1/orgs/{free_id}/domains", headers=free_owner, json=HOST)
    body = assert_problem(refused, 403, "feature_not_in_plan")
    assert body["feature"] == "custom_domains"
    assert await _custom_domains(client, free_id) == []
    (denied,) = await _events(client, free_id, "domain.added")
    assert (denied.outcome, denied.detail["code"], denied.detail["plan"]) == (
        "denied",
        "feature_not_in_plan",
        "free",
    )

    added = await client.post(f"/api/v1/orgs/{team_id}/domains", headers=team_owner, json=HOST)
    assert added.status_code == 201, added.text
    assert await _custom_domains(client, team_id) == ["shop.example.com"]
    (event,) = await _events(client, team_id, "domain.added")
    assert event.outcome == "success"


async def test_the_gate_reads_the_orgs_effective_features(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    """An override grants the feature to a free org; a disabled catalogue rule takes it from a
    team org: the gate follows what ``GET /api/v1/orgs/{id}`` shows."""
    free_owner = await user(client, "owner@free.test")
    team_owner = await user(client, "owner@team.test")
    free_id = await _org(client, admin, "free", "free")
    team_id = await _org(client, admin, "team", "team")
    granted = await client.patch(
        f"/api/v1/orgs/{free_id}", headers=admin, json={"features": {"custom_domains": True}}
    )
    assert granted.status_code == 200, granted.text
    assert "custom_domains" in granted.json()["features"]
    added = await client.post(f"/api/v1/orgs/{free_id}/domains", headers=free_owner, json=HOST)
    assert added.status_code == 201, added.text

    rule = await client.put(
        "/api/v1/features/custom_domains", headers=admin, json={"disabled": True}
    )
    assert rule.status_code in (200, 201), rule.text
    other = {"hostname": "other.example.com"}
    for org_id, owner in ((team_id, team_owner), (free_id, free_owner)):
        refused = await client.post(f"/api/v1/orgs/{org_id}/domains", headers=owner, json=other)
        assert_problem(refused, 403, "feature_not_in_plan")
    assert await _custom_domains(client, team_id) == []


async def test_an_org_moved_to_a_plan_without_the_feature_keeps_its_domains(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    owner = await user(client, "owner@team.test")
    org_id = await _org(client, admin, "team", "team")
    added = await client.post(f"/api/v1/orgs/{org_id}/domains", headers=owner, json=HOST)
    assert added.status_code == 201, added.text
    async with direct_db(client) as db:
        row = await db.get(Domain, added.json()["id"])
        assert row is not None
        row.verified, row.claim_expires_at = True, None
        db.add(row)
        await db.commit()
    moved = await client.patch(f"/api/v1/orgs/{org_id}", headers=admin, json={"plan": "free"})
    assert moved.status_code == 200, moved.text
    assert "custom_domains" not in moved.json()["features"]

    listed = (await client.get(f"/api/v1/orgs/{org_id}/domains", headers=owner)).json()["items"]
    assert [(d["hostname"], d["verified"]) for d in listed if d["kind"] == "custom"] == [
        ("shop.example.com", True)
    ]
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        assert "shop.example.com" in await routed_hostnames(db, org=org, subdomain="team.x")
    refused = await client.post(
        f"/api/v1/orgs/{org_id}/domains", headers=owner, json={"hostname": "new.example.com"}
    )
    assert_problem(refused, 403, "feature_not_in_plan")
    removed = await client.delete(
        f"/api/v1/orgs/{org_id}/domains/{added.json()['id']}", headers=owner
    )
    assert removed.status_code == 204
    assert await _custom_domains(client, org_id) == []


# --- audit_export -----------------------------------------------------------------------------


def _export_url(org_id: str) -> str:
    return f"/api/v1/orgs/{org_id}/audit/export"


async def _add_events(client: AsyncTestClient[Any], org_id: str, events: list[AuditEvent]) -> None:
    async with direct_db(client) as db:
        for event in events:
            event.org_id = org_id
        db.add_all(events)
        await db.commit()


async def _listed_ids(
    client: AsyncTestClient[Any], headers: dict[str, str], org_id: str
) -> list[int]:
    """Every id ``GET /api/v1/audit`` lists for the org, oldest first."""
    ids: list[int] = []
    params = {"org_id": org_id, "limit": "200"}
    for _ in range(100):
        page = (await client.get("/api/v1/audit", headers=headers, params=params)).json()
        ids += [e["id"] for e in page["items"]]
        if not page["next_cursor"]:
            return sorted(ids)
        params["cursor"] = page["next_cursor"]
    raise AssertionError("more than 100 pages")


def _tricky() -> list[AuditEvent]:
    """Events with cells a spreadsheet would run, and a quoted, multi-line value."""
    return [
        AuditEvent(action="test.formula", actor_email='=HYPERLINK("http://x")', target_id="+1"),
        AuditEvent(action="test.formula", target_type="-2", ip="@SUM(A1)", detail={"a": "=1"}),
        AuditEvent(action="test.quotes", detail={"text": 'a "quoted", multi\nline value'}),
    ]


async def test_export_in_both_formats_parses_back(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    owner = await user(client, "owner@big.test")
    org_id = await _org(client, admin, "big", "enterprise")
    await _add_events(client, org_id, _tricky())
    expected = await _listed_ids(client, admin, org_id)

    lines = await client.get(_export_url(org_id), headers=owner, params={"format": "jsonl"})
    assert lines.status_code == 200, lines.text
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert lines.headers["content-disposition"].startswith('attachment; filename="audit-big-')
    assert lines.headers["content-disposition"].endswith('.jsonl"')
    events = [json.loads(line) for line in lines.text.splitlines()]
    assert [e["id"] for e in events] == expected  # oldest first, nothing missing
    assert events[0]["action"] == "org.create"
    quoted = next(e for e in events if e["action"] == "test.quotes")
    assert quoted["detail"] == {"text": 'a "quoted", multi\nline value'}
    assert next(e for e in events if e["ip"] == "@SUM(A1)")["detail"] == {"a": "=1"}

    table = await client.get(_export_url(org_id), headers=owner, params={"format": "csv"})
    assert table.status_code == 200, table.text
    assert table.headers["content-type"].startswith("text/csv")
    assert table.headers["content-disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(table.text, newline="")))
    assert tuple(rows[0]) == COLUMNS
    first_export = (await _events(client, org_id, "audit.export"))[0]
    # A snapshot: each file ends before its own export's event (the CSV has the JSON one's).
    assert [int(r["id"]) for r in rows] == [*expected, first_export.id]
    by_action = {r["action"]: r for r in rows if r["action"].startswith("test.")}
    assert json.loads(by_action["test.quotes"]["detail"]) == {
        "text": 'a "quoted", multi\nline value'
    }
    first, second = (r for r in rows if r["action"] == "test.formula")
    assert first["actor_email"] == '\'=HYPERLINK("http://x")'
    assert first["target_id"] == "'+1"
    assert (second["target_type"], second["ip"]) == ("'-2", "'@SUM(A1)")
    assert json.loads(second["detail"]) == {"a": "=1"}  # a JSON cell starts with "{"

    exports = await _events(client, org_id, "audit.export")
    assert [(e.outcome, e.detail["format"]) for e in exports] == [
        ("success", "jsonl"),
        ("success", "csv"),
    ]
    assert exports[0].detail["through_id"] == expected[-1]


async def test_export_streams_every_row_of_a_large_log(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    owner = await user(client, "owner@big.test")
    org_id = await _org(client, admin, "big", "enterprise")
    many = 5_000
    assert many > BATCH * 5
    await _add_events(
        client, org_id, [AuditEvent(action="test.bulk", detail={"n": n}) for n in range(many)]
    )
    expected = await _listed_ids(client, admin, org_id)
    assert len(expected) > many

    lines = await client.get(_export_url(org_id), headers=owner)  # jsonl by default
    assert lines.status_code == 200
    assert "content-length" not in lines.headers  # streamed: the length is not known up front
    events = [json.loads(line) for line in lines.text.splitlines()]
    assert [e["id"] for e in events] == expected
    assert [e["detail"]["n"] for e in events if e["action"] == "test.bulk"] == list(range(many))

    table = await client.get(_export_url(org_id), headers=owner, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(table.text, newline="")))
    first_export = (await _events(client, org_id, "audit.export"))[0]
    assert [int(r["id"]) for r in rows] == [*expected, first_export.id]


async def test_export_reads_and_sends_a_batch_at_a_time(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    """What keeps memory flat: the body is made of one encoded chunk per batch of at most
    BATCH rows, each read after the previous one was handed on."""
    await user(client, "owner@big.test")
    org_id = await _org(client, admin, "big", "enterprise")
    await _add_events(client, org_id, [AuditEvent(action="test.bulk") for _ in range(BATCH * 2)])
    through = max(await _listed_ids(client, admin, org_id))
    url = runtime_of(client).engine.url.render_as_string(hide_password=False)
    engine = create_async_engine(url, poolclass=NullPool)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    try:
        for name, header in (("jsonl", 0), ("csv", 1)):
            batches = encoded_batches(
                sessions, org_id, through=through, window=[], encode=ENCODERS[name]
            )
            sizes = [len(chunk.decode().splitlines()) async for chunk in batches]
            # org.create comes first: BATCH, BATCH, then the one row that is left.
            assert sizes == [BATCH + header, BATCH, 1], name
            empty = encoded_batches(sessions, org_id, through=0, window=[], encode=ENCODERS[name])
            assert [chunk.decode() async for chunk in empty] == (
                [",".join(COLUMNS) + "\r\n"] if header else [""]
            )
    finally:
        await engine.dispose()


async def test_export_window_keeps_events_in_since_until(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    owner = await user(client, "owner@big.test")
    org_id = await _org(client, admin, "big", "enterprise")
    times = [datetime(2026, 1, day, tzinfo=UTC) for day in (1, 2, 3)]
    await _add_events(client, org_id, [AuditEvent(action="test.old", at=at) for at in times])
    params = {"since": times[1].isoformat(), "until": times[2].isoformat()}
    answer = await client.get(_export_url(org_id), headers=owner, params=params)
    assert answer.status_code == 200, answer.text
    (only,) = [json.loads(line) for line in answer.text.splitlines()]
    assert only["at"].startswith("2026-01-02")
    # A time without an offset is UTC (comparing it with one that has an offset was a 500).
    mixed = {"since": "2026-01-02T00:00:00", "until": times[2].isoformat()}
    answer = await client.get(_export_url(org_id), headers=owner, params=mixed)
    assert [json.loads(line)["id"] for line in answer.text.splitlines()] == [only["id"]]
    backwards = {"since": times[2].isoformat(), "until": times[1].isoformat()}
    refused = await client.get(_export_url(org_id), headers=owner, params=backwards)
    assert_problem(refused, 400, "invalid_window")


async def test_export_refusals(client: AsyncTestClient[Any], admin: dict[str, str]) -> None:
    team_owner = await user(client, "owner@team.test")
    big_owner = await user(client, "owner@big.test")
    member = await user(client, "member@big.test")
    team_id = await _org(client, admin, "team", "team")
    big_id = await _org(client, admin, "big", "enterprise")
    await add_member(client, big_owner, big_id, "member@big.test", "member")

    body = assert_problem(
        await client.get(_export_url(team_id), headers=team_owner), 403, "feature_not_in_plan"
    )
    assert body["feature"] == "audit_export"
    (denied,) = await _events(client, team_id, "audit.export")
    assert (denied.outcome, denied.detail["code"]) == ("denied", "feature_not_in_plan")
    assert_problem(await client.get(_export_url(big_id), headers=member), 403, "admin_required")
    assert_problem(await client.get(_export_url(big_id), headers=team_owner), 404, "org_not_found")
    assert_problem(await client.get(_export_url(team_id), headers=big_owner), 404, "org_not_found")
    for bad in ("xml", "JSONL", ""):
        answer = await client.get(_export_url(big_id), headers=big_owner, params={"format": bad})
        assert_problem(answer, 400, "invalid_format")
    assert [e.outcome for e in await _events(client, big_id, "audit.export")] == ["denied"]

    # Platform admins export any org's log, whatever its plan; the event says staff did it.
    staff = await client.get(_export_url(team_id), headers=admin, params={"format": "csv"})
    assert staff.status_code == 200, staff.text
    assert "org.create" in staff.text
    exported = (await _events(client, team_id, "audit.export"))[-1]
    assert exported.outcome == "success"
    assert "staff" in exported.detail


async def test_export_document_declares_both_formats(client: AsyncTestClient[Any]) -> None:
    document = (await client.get("/api/schema/openapi.json")).json()
    validate(document)
    operation = document["paths"]["/api/v1/orgs/{org_ref}/audit/export"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/x-ndjson", "text/csv"}
    assert {"400", "403", "404"} <= set(operation["responses"])
